//! A lesson's verdict: each observation, and each claim with whether it held in this run.

use super::*;
use crate::event::{Criterion, Event, Kind, ObsValue, Op};

/// One observation and its claim.
#[derive(Clone, Debug)]
pub struct Claim {
    pub name: String,
    pub value: ObsValue,
    pub holds: Option<bool>,
}

/// A lesson's claim about one observation, made of data (`value <op> target`, and the
/// other conditions it rests on), from which the verdict computes whether it held and
/// the stream carries both the data (`claim`) and its prose (`expected`), so that a
/// grader recomputes `holds` and never parses words.
#[derive(Clone, Debug)]
pub struct Expect {
    criterion: Criterion,
    /// What the target is, in the prose (`tickets` in `> tickets (1)`).
    of: Option<String>,
    /// A remark after the target in the prose (`SIGTERM` in `== -15 (SIGTERM)`).
    note: Option<String>,
}

impl Expect {
    fn new(op: Op, target: Vec<ObsValue>) -> Expect {
        Expect {
            criterion: Criterion {
                op,
                value: target,
                and: None,
            },
            of: None,
            note: None,
        }
    }

    /// `value == target`.
    pub fn eq(target: impl Into<ObsValue>) -> Expect {
        Expect::new(Op::Eq, vec![target.into()])
    }

    /// `value != target`.
    pub fn ne(target: impl Into<ObsValue>) -> Expect {
        Expect::new(Op::Ne, vec![target.into()])
    }

    /// `value < target`.
    pub fn lt(target: impl Into<ObsValue>) -> Expect {
        Expect::new(Op::Lt, vec![target.into()])
    }

    /// `value > target`.
    pub fn gt(target: impl Into<ObsValue>) -> Expect {
        Expect::new(Op::Gt, vec![target.into()])
    }

    /// `value >= target`.
    pub fn ge(target: impl Into<ObsValue>) -> Expect {
        Expect::new(Op::Ge, vec![target.into()])
    }

    /// `low <= value <= high`.
    pub fn between(low: impl Into<ObsValue>, high: impl Into<ObsValue>) -> Expect {
        Expect::new(Op::Between, vec![low.into(), high.into()])
    }

    /// A string value that begins with `prefix`.
    pub fn starts_with(prefix: &str) -> Expect {
        Expect::new(Op::StartsWith, vec![prefix.into()])
    }

    /// Name the target in the prose: `> tickets (1)`.
    pub fn of(mut self, what: &str) -> Expect {
        self.of = Some(what.to_string());
        self
    }

    /// A remark after the target in the prose: `== -15 (SIGTERM)`.
    pub fn note(mut self, note: impl Into<String>) -> Expect {
        self.note = Some(note.into());
        self
    }

    /// Another condition the claim rests on, measured in this run (`name` says what,
    /// in the stream's `claim.and`): the claim holds only if it held too.
    pub fn and(mut self, name: &str, held: bool) -> Expect {
        self.criterion
            .and
            .get_or_insert_with(Vec::new)
            .push((name.to_string(), held));
        self
    }

    /// The prose: `== 0`, `> tickets (1)`, `between 2 and 4`, `== -15 (SIGTERM)`,
    /// `== 3, and each_once`.
    fn prose(&self) -> String {
        let show = |v: &ObsValue| v.to_json().to_string();
        let target = match (self.criterion.op, self.criterion.value.as_slice()) {
            (Op::Between, [lo, hi]) => format!("{} and {}", show(lo), show(hi)),
            (_, values) => values.iter().map(show).collect::<Vec<_>>().join(", "),
        };
        let op = match self.criterion.op {
            Op::StartsWith => "starts with",
            op => op.as_str(),
        };
        let mut text = match &self.of {
            Some(what) => format!("{op} {what} ({target})"),
            None => format!("{op} {target}"),
        };
        if let Some(note) = &self.note {
            text.push_str(&format!(" ({note})"));
        }
        for (name, _) in self.criterion.and.iter().flatten() {
            text.push_str(&format!(", and {name}"));
        }
        text
    }
}

impl Ctx<'_> {
    /// Report a measured value that claims nothing.
    pub fn observe(&mut self, name: &str, value: impl Into<ObsValue>) {
        self.record(name, value.into(), None);
    }

    /// Report a measured value and the lesson's claim about it: whether it holds is
    /// the claim's test of the value, nothing else.
    pub fn claim(&mut self, name: &str, value: impl Into<ObsValue>, expect: Expect) {
        self.record(name, value.into(), Some(expect));
    }

    fn record(&mut self, name: &str, value: ObsValue, expect: Option<Expect>) {
        let holds = expect.as_ref().map(|e| e.criterion.test(&value));
        self.claims.push(Claim {
            name: name.into(),
            value: value.clone(),
            holds,
        });
        self.sink.emit(Event::now(
            self.main_pid,
            Kind::Observation {
                name: name.into(),
                value,
                expected: expect.as_ref().map(Expect::prose),
                claim: expect.map(|e| e.criterion),
                holds,
            },
        ));
    }

    /// Every claim made so far held.
    pub fn all_held(&self) -> bool {
        self.claims.iter().all(|c| c.holds != Some(false))
    }
}
