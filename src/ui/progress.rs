//! `warm`'s progress: a bar per image on a terminal, a line per finished
//! image otherwise, nothing but failures with -q.

use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::ui::{human_bytes, Tone, Ui};
use crate::warm::{ImageResult, Plan, Reporter, Target};

/// A bar per image on a terminal; a line per finished image otherwise;
/// nothing but failures with -q.
pub struct Progress<'a> {
    ui: &'a Ui,
    multi: Option<MultiProgress>,
    bars: Mutex<Vec<Option<ProgressBar>>>,
    resolving: ProgressBar,
}

impl<'a> Progress<'a> {
    pub fn new(ui: &'a Ui, images: usize) -> Progress<'a> {
        let multi = ui
            .live_progress()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        let resolving = match &multi {
            Some(m) => {
                let s = m.add(ProgressBar::new_spinner());
                s.set_style(
                    ProgressStyle::with_template("{spinner} {msg}").expect("valid template"),
                );
                s.set_message(format!("reading the manifests of {images} images..."));
                s.enable_steady_tick(std::time::Duration::from_millis(100));
                s
            }
            None => ProgressBar::hidden(),
        };
        Progress {
            ui,
            multi,
            bars: Mutex::new(vec![None; images]),
            resolving,
        }
    }

    pub fn done(&self) {
        self.resolving.finish_and_clear();
    }

    fn print(&self, line: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => self.ui.human(line),
        }
    }
}

impl Reporter for Progress<'_> {
    fn planned(&self, index: usize, target: &Target, _plan: &Plan, total: u64) {
        let Some(multi) = &self.multi else { return };
        self.resolving.finish_and_clear();
        let bar = multi.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:40!} [{bar:25}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(target.image.to_string());
        self.bars.lock().unwrap()[index] = Some(bar);
    }

    fn advance(&self, index: usize, bytes: u64) {
        if let Some(bar) = &self.bars.lock().unwrap()[index] {
            bar.inc(bytes);
        }
    }

    fn finished(&self, index: usize, result: &ImageResult) {
        if let Some(bar) = self.bars.lock().unwrap()[index].take() {
            bar.finish_and_clear();
        }
        if result.error.is_some() {
            // Shown even with -q, like every warning.
            self.print(&format!(
                "{} {}",
                self.ui.paint(Tone::Warn, "warning:"),
                describe(result)
            ));
        } else if !self.ui.quiet {
            self.print(&describe(result));
        }
    }
}

/// One image's result in a line.
fn describe(r: &ImageResult) -> String {
    let platforms = if r.plan.platforms.is_empty() {
        String::new()
    } else {
        format!(" ({})", r.plan.platforms.join(", "))
    };
    match &r.error {
        Some(e) => format!("failed {}{platforms}: {e}", r.target.image),
        None => format!(
            "warmed {}{platforms}: {} blobs, {} in {:.1}s",
            r.target.image,
            r.blobs,
            human_bytes(r.bytes),
            r.elapsed.as_secs_f64()
        ),
    }
}
