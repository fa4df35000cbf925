//! Terminal progress for training: a bar per epoch with loss, images/s and ETA, and a line per epoch.

use cg_core::EpochRecord;
use cg_model::train::{Observer, Progress};
use indicatif::{ProgressBar, ProgressStyle};

use crate::util::human_secs;

/// Draws training progress on stderr (a bar on a terminal, epoch lines always).
pub struct TermProgress {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl TermProgress {
    pub fn new(quiet: bool) -> Self {
        Self { bar: None, quiet }
    }
}

impl Observer for TermProgress {
    fn on_step(&mut self, p: &Progress) {
        if self.quiet {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(p.steps_per_epoch as u64);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        bar.set_prefix(format!("epoch {}/{}", p.epoch, p.epochs));
        bar.set_position(p.step as u64);
        bar.set_message(format!("loss {:.4}  {:.1} img/s  ETA {}", p.loss, p.img_per_s, human_secs(p.eta_secs)));
    }

    fn on_epoch(&mut self, r: &EpochRecord) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.quiet {
            return;
        }
        let open: Vec<String> = r.gates.iter().map(|g| format!("{:.2}", g.gate_open_rate)).collect();
        eprintln!(
            "epoch {:>3}  loss {:.4}  train {:.2}%  test {:.2}%  savings {:.1}% nominal / {:.1}% actual  gates open [{}]  {}",
            r.epoch,
            r.train_loss,
            100.0 * r.train_acc,
            100.0 * r.test_acc,
            100.0 * r.savings_nominal,
            100.0 * r.savings_actual,
            open.join(" "),
            human_secs(r.wall_secs)
        );
    }

    fn on_note(&mut self, msg: &str) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }
}
