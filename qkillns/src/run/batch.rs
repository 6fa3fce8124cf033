//! The batches of a run: the selected messages wait in a batch of
//! [`BATCH`] for their headers (read together, several reads in flight),
//! then the batch's plan is made (removal, or backdating), run through the
//! executor (dry run or live: the same path) and each message listed in
//! order with its outcome. Memory holds one batch, never the whole
//! selection.

use qcommon::mutator::{Action, Plan};
use qcommon::queue::Part;
use qcommon::scan::ScannedMessage;

use super::execute::Outcome;
use super::{Runner, Work, LISTED};
use crate::exit::ExitCode;
use crate::headers;
use crate::plan::{self, Expiry};
use crate::report::{self, Entry, Status};
use crate::select::{classify, Classified, Stage, View};

/// Selected messages waiting for their headers to be read together, and
/// then removed together.
pub(super) const BATCH: usize = 256;

/// A selected message of a batch.
struct Chosen<'m> {
    msg: &'m ScannedMessage,
    header_read: bool,
    subject: Option<String>,
    /// A status without an action (expire: already past, not
    /// preprocessed, damaged).
    fixed: Option<Status>,
    /// Its action's index in the batch's plan.
    action: Option<usize>,
    /// Bytes of the message (expire listings).
    bytes: u64,
}

impl Runner<'_> {
    /// The envelope stage of the selection; a message that passes waits
    /// in the batch for its header.
    pub(super) fn consider(&mut self, msg: Box<ScannedMessage>) {
        if !self.wanted.is_empty() {
            if !self.wanted.contains(&msg.number) {
                return;
            }
            self.seen.insert(msg.number);
        }
        match classify(&msg) {
            Classified::NoEnvelope => {
                self.counts.no_envelope += 1;
                if self.wanted.contains(&msg.number) {
                    self.counts.named_left += 1;
                    report::error(&format!(
                        "message {}: has neither todo, info nor a complete intd (being queued right now, or a lone \
                         mess a crash left): left alone; qmail-queue finishes it, or `qfixq live` quarantines it",
                        msg.number
                    ));
                }
            }
            Classified::Unreadable(p) => self.unreadable(msg.number, &p),
            Classified::Message(mut view) => {
                if !self.criteria.sender_matches(view.sender) || !self.criteria.rest_matches_in(self.root, &mut view) {
                    self.not_selected(msg.number);
                    return;
                }
                if self.criteria.is_default()
                    && !self.args.include_salvaged
                    && view.sender.is_empty()
                    && self.salvaged.contains(msg.number)
                {
                    self.counts.salvaged_kept += 1;
                    return;
                }
                if !view.problems.is_empty() {
                    return self.unreadable(msg.number, &view.problems);
                }
                self.batch.push(*msg);
                if self.batch.len() >= BATCH {
                    self.flush();
                }
            }
        }
    }

    /// Finishes the waiting messages: reads their headers (in parallel,
    /// when a filter or the listing needs them), builds the batch's plan,
    /// runs it through the executor (dry or live) and lists each message
    /// in order with its outcome.
    pub(super) fn flush(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        if batch.is_empty() {
            return;
        }
        let filters = &self.args.header;
        let looked = if filters.is_empty() && !self.wants_subject() {
            vec![headers::Looked::Skipped; batch.len()]
        } else {
            let paths: Vec<_> = batch.iter().map(|m| m.file(Part::Mess).map(|f| f.rel_path(m.number))).collect();
            headers::look_all(self.root, &paths, filters)
        };

        // The plan of this batch.
        let mut plan = Plan::default();
        let mut sizes: Vec<Vec<u64>> = Vec::new();
        let mut chosen: Vec<Chosen<'_>> = Vec::new();
        for (msg, looked) in batch.iter().zip(looked) {
            if let Some(c) = self.choose(msg, looked, &mut plan, &mut sizes) {
                chosen.push(c);
            }
        }
        let outcomes = self.executor.run(&plan, &sizes, self.work);
        for c in chosen {
            let action = c.action.map(|k| (&plan.actions[k], &outcomes[k]));
            self.settle(&c, action);
        }
    }

    /// Counts and lists one chosen message: its fixed status, or its
    /// action's outcome.
    fn settle(&mut self, c: &Chosen<'_>, action: Option<(&Action, &Outcome)>) {
        let Classified::Message(view) = classify(c.msg) else {
            return;
        };
        let (status, bytes, error, action) = match (c.fixed, action) {
            (Some(status), _) => (status, c.bytes, None, None),
            (None, Some((a, o))) => (o.status, o.bytes, o.error.clone(), Some(a)),
            (None, None) => return,
        };
        if let Some(e) = &error {
            report::error(&format!("message {}: {e}; the message is left as it is now", c.msg.number));
            self.exit = self.exit.worst(ExitCode::Operational);
        }
        match status {
            Status::WouldRemove | Status::Removed => {
                self.counts.removed += 1;
                self.counts.bytes += bytes;
            }
            Status::Failed => {
                self.counts.failed += 1;
                self.counts.bytes += bytes;
            }
            Status::WouldExpire | Status::Expired => self.counts.expired += 1,
            Status::AlreadyPast => self.counts.already_past += 1,
            Status::NotPreprocessed => self.counts.not_preprocessed += 1,
            Status::Damaged => self.counts.damaged += 1,
            Status::Vanished => self.counts.vanished += 1,
        }
        let bytes = if matches!(self.work, Work::Expire { .. }) { c.bytes } else { bytes };
        self.list(&view, (c.header_read, c.subject.as_deref()), status, action, bytes, error);
    }

    /// The listing shows the Subject: in a dry run's listing (text or
    /// JSON). A live run reads the message only for a header filter: on a
    /// cold cache each read waits for the disk.
    fn wants_subject(&self) -> bool {
        self.dry && !self.args.quiet
    }

    /// The header stage of the selection, and the message's action (added
    /// to `plan`) or its fixed status.
    fn choose<'m>(
        &mut self,
        msg: &'m ScannedMessage,
        looked: headers::Looked,
        plan: &mut Plan,
        sizes: &mut Vec<Vec<u64>>,
    ) -> Option<Chosen<'m>> {
        let Classified::Message(view) = classify(msg) else {
            return None;
        };
        let filtering = !self.args.header.is_empty();
        let header_read = matches!(looked, headers::Looked::Read { .. });
        let subject = match looked {
            headers::Looked::Read { matches, subject } => {
                if filtering && !matches {
                    self.not_selected(msg.number);
                    return None;
                }
                subject
            }
            headers::Looked::Error(e) if filtering => {
                self.unreadable(msg.number, &[e]);
                return None;
            }
            // No message text: no header can match.
            headers::Looked::NoMessage if filtering => {
                self.not_selected(msg.number);
                return None;
            }
            _ => None,
        };
        self.counts.selected += 1;
        let mut c = Chosen { msg, header_read, subject, fixed: None, action: None, bytes: 0 };
        match self.work {
            Work::Remove => {
                let (action, sz) = plan::removal(msg);
                c.action = Some(plan.actions.len());
                plan.actions.push(action);
                sizes.push(sz);
            }
            Work::Expire { target } => {
                if !self.choose_expiry(msg, view.stage, target, &mut c, (plan, sizes)) {
                    return None;
                }
            }
        }
        Some(c)
    }

    /// `--expire`: the backdating of a selected message (added to `plan`),
    /// or its fixed status; false when it turns out unreadable.
    fn choose_expiry(
        &mut self,
        msg: &ScannedMessage,
        stage: Stage,
        target: i64,
        c: &mut Chosen<'_>,
        (plan, sizes): (&mut Plan, &mut Vec<Vec<u64>>),
    ) -> bool {
        // A damaged message (an info without a mess, an intd beside an
        // info) is qfixq's to repair, not to backdate.
        let skipped = match stage {
            Stage::Preprocessed => None,
            Stage::Damaged => Some(Status::Damaged),
            _ => Some(Status::NotPreprocessed),
        };
        if let Some(status) = skipped {
            c.fixed = Some(status);
            return true;
        }
        c.bytes = qcommon::remove::message_bytes(msg);
        match plan::expiry(msg, target) {
            Expiry::NoInfo => {
                self.counts.selected -= 1;
                self.unreadable(msg.number, &["no stat of its info file".into()]);
                return false;
            }
            Expiry::AlreadyPast => c.fixed = Some(Status::AlreadyPast),
            Expiry::Set(action) => {
                c.action = Some(plan.actions.len());
                plan.actions.push(action);
                sizes.push(vec![0]);
            }
        }
        true
    }

    fn list(
        &mut self,
        view: &View<'_>,
        subject: (bool, Option<&str>),
        status: Status,
        action: Option<&Action>,
        bytes: u64,
        error: Option<String>,
    ) {
        if self.args.quiet {
            return;
        }
        let e = Entry { view, header_read: subject.0, subject: subject.1, status, action, bytes, error };
        if self.json() {
            let j = report::json_entry(&e, self.criteria.now);
            self.json_item(&j);
        } else {
            // The first few, and every failure; the rest are counted.
            let every = self.args.verbose;
            if !every && self.listed >= LISTED && status != Status::Failed {
                self.unlisted += 1;
                return;
            }
            self.listed += 1;
            self.out.line(&report::text_line(&e, self.criteria.now, self.utf8));
            if self.args.verbose {
                if let Some(a) = action {
                    for s in &a.steps {
                        self.out.line(&format!("    {s}"));
                    }
                }
            }
        }
    }
}
