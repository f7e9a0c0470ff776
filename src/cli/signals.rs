//! Ctrl-C / SIGTERM as futures: the first resolves [`Interrupts::first`], the second
//! [`Interrupts::second`]. The run drains on the first and the process returns on the second;
//! nothing calls `process::exit` from inside a task.
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Counts interrupts (SIGINT and SIGTERM) received since installation.
pub struct Interrupts {
    count: watch::Receiver<u32>,
}

impl Interrupts {
    /// Install the handlers (must be called inside a tokio runtime).
    pub fn install() -> std::io::Result<Interrupts> {
        let (tx, rx) = watch::channel(0u32);
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                tx.send_modify(|n| *n += 1);
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(Interrupts { count: rx })
    }

    async fn at_least(&self, n: u32) {
        let mut rx = self.count.clone();
        // An error means the sender task is gone (runtime shutting down): never resolve.
        if rx.wait_for(|c| *c >= n).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves once the first interrupt has arrived.
    pub async fn first(&self) {
        self.at_least(1).await
    }

    /// Resolves once the second interrupt has arrived.
    pub async fn second(&self) {
        self.at_least(2).await
    }
}
