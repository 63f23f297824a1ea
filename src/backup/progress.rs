//! The progress bar of a backup on a terminal: bytes of the snapshot read (and hashed) so far,
//! of the total, with the rate. Under systemd there is no bar, only the log lines.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::manifest::Progress;

pub struct Bar<'scope> {
    stop: Arc<AtomicBool>,
    thread: std::thread::ScopedJoinHandle<'scope, ()>,
}

impl<'scope> Bar<'scope> {
    /// Draws `progress` on stderr until [`Bar::finish`].
    pub fn start<'env>(
        s: &'scope std::thread::Scope<'scope, 'env>,
        progress: &'env Progress,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let done = stop.clone();
        let thread = s.spawn(move || {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {bytes}/{total_bytes} read [{wide_bar}] {binary_bytes_per_sec}, {eta} left",
                )
                .expect("a valid template"),
            );
            while !done.load(Ordering::Relaxed) {
                bar.set_length(progress.total.load(Ordering::Relaxed));
                bar.set_position(progress.done.load(Ordering::Relaxed));
                std::thread::sleep(Duration::from_millis(200));
            }
            bar.finish_and_clear();
        });
        Bar { stop, thread }
    }

    pub fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}
