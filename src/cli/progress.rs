//! A spinner on standard error for work that runs longer than about a second (a certified
//! evaluation at batch scale), shown only when standard error is a terminal, so that
//! pipes, files and CI logs stay clean.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long work runs before the spinner appears.
const DELAY: Duration = Duration::from_secs(1);

/// A spinner that appears after a second and is cleared when dropped.
pub struct Spinner {
    bar: ProgressBar,
    /// Set when the work is done; the delayed start checks it under the lock.
    done: Arc<Mutex<bool>>,
}

impl Spinner {
    /// Starts the delay for `message` (shown with the elapsed time).
    pub fn after_a_second(message: String) -> Spinner {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        let done = Arc::new(Mutex::new(false));
        if std::io::stderr().is_terminal() {
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
                bar.set_style(style);
            }
            bar.set_message(message);
            let (bar, done) = (bar.clone(), Arc::clone(&done));
            std::thread::spawn(move || {
                std::thread::sleep(DELAY);
                let finished = done.lock().unwrap_or_else(|p| p.into_inner());
                if !*finished {
                    bar.set_draw_target(ProgressDrawTarget::stderr());
                    bar.enable_steady_tick(Duration::from_millis(120));
                }
            });
        }
        Spinner { bar, done }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        let mut finished = self.done.lock().unwrap_or_else(|p| p.into_inner());
        *finished = true;
        self.bar.finish_and_clear();
    }
}
