//! A lesson's verdict: each observation, and each claim with whether it held in this run.

use super::*;
use crate::event::{Event, Kind, ObsValue};

/// One observation and its claim.
#[derive(Clone, Debug)]
pub struct Claim {
    pub name: String,
    pub value: ObsValue,
    pub holds: Option<bool>,
}

impl Ctx<'_> {
    /// Report a measured value that claims nothing.
    pub fn observe(&mut self, name: &str, value: impl Into<ObsValue>) {
        self.record(name, value.into(), None, None);
    }

    /// Report a measured value and whether it agrees with the lesson's claim, stated in
    /// `expected` (e.g. `"== 0"`).
    pub fn claim(&mut self, name: &str, value: impl Into<ObsValue>, expected: &str, holds: bool) {
        self.record(name, value.into(), Some(expected.to_string()), Some(holds));
    }

    fn record(
        &mut self,
        name: &str,
        value: ObsValue,
        expected: Option<String>,
        holds: Option<bool>,
    ) {
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
                expected,
                holds,
            },
        ));
    }

    /// Every claim made so far held.
    pub fn all_held(&self) -> bool {
        self.claims.iter().all(|c| c.holds != Some(false))
    }
}
