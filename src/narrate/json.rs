//! The JSON Lines renderer: one object per line on stdout, nothing else there.
//! The shape is DESIGN.md's contract; see `Event::to_json` and `docs/events.md`.

use super::Render;
use crate::event::{Event, Kind};
use std::io::{self, Write};

pub struct Json<W: Write + Send> {
    out: W,
    lesson: String,
    t0_ns: u64,
    /// When the tour began (`tour_start`): `tour_end` is stamped on the tour's clock.
    tour_t0_ns: u64,
}

impl<W: Write + Send> Json<W> {
    pub fn new(out: W) -> Self {
        Json {
            out,
            lesson: String::new(),
            t0_ns: 0,
            tour_t0_ns: 0,
        }
    }
}

impl<W: Write + Send> Render for Json<W> {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        match &ev.kind {
            Kind::LessonStart { lesson, .. } => {
                self.lesson = lesson.clone();
                self.t0_ns = ev.t_ns;
            }
            // The tour's frame is the tour's, not its last lesson's: `lesson` is `tour`.
            Kind::TourStart { .. } => {
                self.lesson = "tour".into();
                (self.t0_ns, self.tour_t0_ns) = (ev.t_ns, ev.t_ns);
            }
            Kind::TourEnd { .. } => {
                self.lesson = "tour".into();
                self.t0_ns = self.tour_t0_ns;
            }
            _ => {}
        }
        let line = ev.to_json(&self.lesson, self.t0_ns);
        serde_json::to_writer(&mut self.out, &line)?;
        self.out.write_all(b"\n")?;
        // A grader reads the stream live: each line goes out whole, at once.
        self.out.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
