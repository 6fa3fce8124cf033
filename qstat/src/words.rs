//! `wc -w`, as qmail-qstat applies it to the output of `find`: this module
//! owns the rule that turns a path into a number of "words".
//!
//! qmail-qstat counts with `find queue/mess/* -print | wc -w`, so a name
//! holding white space counts once per word, and a name made only of
//! unprintable bytes counts for nothing. The rules are those of GNU
//! coreutils 9 `wc -w`: a word is a maximal run of printable characters
//! between white space; characters that are neither (control characters,
//! invalid multibyte sequences) neither start nor end a word. In a UTF-8
//! locale the Unicode spaces separate words too, and so do the no-break
//! spaces U+00A0, U+2007, U+202F and U+2060 unless `POSIXLY_CORRECT` is
//! set; every other valid non-ASCII character counts as printable (glibc
//! knows which unassigned code points are not; this does not). In any
//! other locale, bytes above 0x7f are neither.

/// Which `wc -w` rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WordRules {
    utf8: bool,
    nbsp_separates: bool,
}

/// Where a count stands after some bytes: words started so far and
/// whether the last significant character was inside a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WordState {
    /// Words started so far.
    pub words: u64,
    /// Inside a word.
    pub in_word: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Space,
    Word,
    Neither,
}

impl WordRules {
    /// The C (POSIX) locale.
    pub fn c() -> WordRules {
        WordRules { utf8: false, nbsp_separates: false }
    }

    /// A UTF-8 locale; `posixly_correct` as when `POSIXLY_CORRECT` is set.
    pub fn utf8(posixly_correct: bool) -> WordRules {
        WordRules { utf8: true, nbsp_separates: !posixly_correct }
    }

    /// The rules of this process's locale (`LC_ALL`, `LC_CTYPE`, `LANG`),
    /// as `wc` would see them: UTF-8 only when the locale exists and its
    /// character set is UTF-8.
    ///
    /// Safe from any thread: it reads the environment through `std::env`
    /// and the locale as an object of its own, leaving the process's
    /// locale ("C", where Rust programs keep it) alone.
    pub fn from_environment() -> WordRules {
        let posixly_correct = std::env::var_os("POSIXLY_CORRECT").is_some();
        if locale_is_utf8() {
            WordRules::utf8(posixly_correct)
        } else {
            WordRules::c()
        }
    }

    fn class_of_char(&self, c: char) -> Class {
        let u = c as u32;
        if u < 0x80 {
            return ascii_class(u as u8);
        }
        match u {
            0x1680 | 0x2000..=0x2006 | 0x2008..=0x200a | 0x2028 | 0x2029 | 0x205f | 0x3000 => Class::Space,
            0xa0 | 0x2007 | 0x202f | 0x2060 => {
                if self.nbsp_separates {
                    Class::Space
                } else {
                    Class::Word
                }
            }
            0x80..=0x9f | 0xfdd0..=0xfdef => Class::Neither,
            _ if u & 0xfffe == 0xfffe => Class::Neither,
            _ => Class::Word,
        }
    }

    /// Feeds `bytes` into `state`.
    pub fn feed(&self, state: &mut WordState, bytes: &[u8]) {
        let mut step = |class: Class| match class {
            Class::Space => state.in_word = false,
            Class::Word => {
                if !state.in_word {
                    state.words += 1;
                    state.in_word = true;
                }
            }
            Class::Neither => {}
        };
        if !self.utf8 || bytes.is_ascii() {
            for &b in bytes {
                step(if b < 0x80 { ascii_class(b) } else { Class::Neither });
            }
            return;
        }
        for chunk in bytes.utf8_chunks() {
            for c in chunk.valid().chars() {
                step(self.class_of_char(c));
            }
            for _ in chunk.invalid() {
                step(Class::Neither);
            }
        }
    }

    /// The words a name adds to a path that ends inside a word (after a
    /// `/`): 0 for every ordinary message file name.
    pub fn words_after_slash(&self, name: &[u8]) -> u64 {
        if name.iter().all(|&b| (0x21..=0x7e).contains(&b)) {
            return 0;
        }
        let mut st = WordState { words: 0, in_word: true };
        self.feed(&mut st, name);
        st.words
    }

    /// The state after `prefix` + `name` + `/`, `prefix` ending inside a
    /// word: the base for the entries of directory `name`.
    pub fn dir_base(&self, prefix: WordState, name: &[u8]) -> WordState {
        let mut st = prefix;
        self.feed(&mut st, name);
        self.feed(&mut st, b"/");
        st
    }

    /// The words of a whole line, from the start.
    pub fn count(&self, line: &[u8]) -> u64 {
        let mut st = WordState { words: 0, in_word: false };
        self.feed(&mut st, line);
        st.words
    }
}

fn ascii_class(b: u8) -> Class {
    match b {
        b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' => Class::Space,
        0x21..=0x7e => Class::Word,
        _ => Class::Neither,
    }
}

/// The name of the `LC_CTYPE` locale the environment asks for, as the C
/// library's `setlocale(LC_CTYPE, "")` reads it: `LC_ALL`, else
/// `LC_CTYPE`, else `LANG`, the first that is set and not empty; else "C".
fn ctype_locale_name() -> std::ffi::CString {
    let name = ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .filter_map(std::env::var_os)
        .find(|v| !v.is_empty())
        .unwrap_or_else(|| "C".into());
    std::ffi::CString::new(name.into_encoded_bytes()).unwrap_or_else(|_| c"C".to_owned())
}

/// Whether the locale from the environment exists and uses UTF-8. It
/// loads the locale as an object of its own (`newlocale`), never touching
/// the process's locale, so it is safe whatever other threads do.
fn locale_is_utf8() -> bool {
    let name = ctype_locale_name();
    // SAFETY: `name` is a valid C string; a null base asks for a new
    // locale object, owned here and freed below; nl_langinfo_l's string
    // belongs to that object and is copied before it is freed. Nothing
    // here reads or changes the process-wide locale. Neither std nor nix
    // wraps newlocale or nl_langinfo_l.
    unsafe {
        let loc = libc::newlocale(libc::LC_CTYPE_MASK, name.as_ptr(), std::ptr::null_mut());
        if loc.is_null() {
            return false;
        }
        let codeset = libc::nl_langinfo_l(libc::CODESET, loc);
        let utf8 = !codeset.is_null() && {
            let s = std::ffi::CStr::from_ptr(codeset).to_bytes().to_ascii_lowercase();
            s == b"utf-8" || s == b"utf8"
        };
        libc::freelocale(loc);
        utf8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    fn wc(locale: &str, data: &[u8]) -> Option<u64> {
        let mut child = Command::new("wc")
            .arg("-w")
            .env("LC_ALL", locale)
            .env_remove("POSIXLY_CORRECT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        child.stdin.take()?.write_all(data).ok()?;
        let out = child.wait_with_output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }

    const SAMPLES: &[&[u8]] = &[
        b"queue/mess/0/12345",
        b"queue/mess/0/a b",
        b"queue/mess/0/bad\nname",
        b"queue/mess/0/\x01",
        b"a\x01b",
        b"\x01a",
        b"a \x01 b",
        b"\x7f",
        b"a\x0bb\x0cc\rd\te",
        b"a\xc2\xa0b",
        b"a\xe2\x80\x83b",
        b"\xc3\xa9",
        b"a\xc2\x85b",
        b"x\xe3\x80\x80y",
        b"a\xe2\x80\xafb",
        b"a\xe2\x81\xa0b",
        b"\xff",
        b"a\xffb",
        b"\xf0\x9f\x98\x80",
        b" lead and trail ",
    ];

    #[test]
    fn c_locale_rules() {
        let r = WordRules::c();
        assert_eq!(r.count(b"queue/mess/0/12345"), 1);
        assert_eq!(r.count(b"queue/mess/0/a b"), 2);
        assert_eq!(r.count(b"\x01"), 0);
        assert_eq!(r.count(b"a\xc2\xa0b"), 1);
        assert_eq!(r.count(b"\xc3\xa9"), 0);
        assert_eq!(r.words_after_slash(b"12345"), 0);
        assert_eq!(r.words_after_slash(b"a b"), 1);
        assert_eq!(r.words_after_slash(b" "), 0);
        assert_eq!(r.words_after_slash(b"x\ny z"), 2);
    }

    #[test]
    fn utf8_locale_rules() {
        let r = WordRules::utf8(false);
        assert_eq!(r.count(b"a\xc2\xa0b"), 2);
        assert_eq!(r.count(b"\xc3\xa9"), 1);
        assert_eq!(r.count(b"a\xffb"), 1);
        assert_eq!(r.count(b"x\xe3\x80\x80y"), 2);
        assert_eq!(WordRules::utf8(true).count(b"a\xc2\xa0b"), 1);
    }

    #[test]
    fn dir_base_joins_words_at_slashes() {
        let r = WordRules::c();
        let top = WordState { words: 1, in_word: true }; // "queue/mess/"
        assert_eq!(r.dir_base(top, b"0"), WordState { words: 1, in_word: true });
        // "queue/mess/a /" : the slash starts a new word.
        assert_eq!(r.dir_base(top, b"a "), WordState { words: 2, in_word: true });
        let base = r.dir_base(top, b"x y");
        assert_eq!(base.words + r.words_after_slash(b"f g"), r.count(b"queue/mess/x y/f g"));
    }

    /// The rules agree with the real `wc -w` of this system (GNU coreutils
    /// 9), in the C locale and, when installed, C.UTF-8.
    #[test]
    fn agrees_with_the_real_wc() {
        for (locale, rules) in [("C", WordRules::c()), ("C.UTF-8", WordRules::utf8(false))] {
            if locale != "C" && wc(locale, "é".as_bytes()) != Some(1) {
                eprintln!("skipped: locale {locale} not installed");
                continue;
            }
            for s in SAMPLES {
                let Some(real) = wc(locale, s) else {
                    eprintln!("skipped: wc not runnable");
                    return;
                };
                assert_eq!(rules.count(s), real, "{locale} {:?}", String::from_utf8_lossy(s));
            }
        }
    }
}
