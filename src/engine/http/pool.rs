//! HTTP/2 connection sharing: the VUs of one worker (per scenario and target) are multiplexed
//! over a bounded number of connections, with h2load's meaning of `-c` and `-m`
//! ([`crate::spec::H2Options`]): VUs fill a connection `streams` at a time (so a closed-model
//! run keeps at most that many streams in flight on each), and no more than `connections`
//! (the run's total, split over the worker threads) are ever open at once; past
//! `connections x streams` VUs the connections are shared round robin.
//!
//! Why here and not in each VU: one connection per VU (the HTTP/1.1 model) made an h2 run open
//! as many connections as VUs, each carrying one stream, which is neither what h2load measures
//! nor what browsers and gateways do. The pool is worker-local (an `Rc`, `Cell`s, no lock): a
//! VU holds a clone of its slot's connection handle and only comes back to the slot when its
//! handle is closed or the slot moved on to a newer connection ([`Slot::generation`], one
//! `Cell` read per request). One VU connects for a slot at a time; the others wait for it,
//! so a slot never opens two connections at once (the server sees the bound).
//!
//! A connection that fails for good (closed, GOAWAY) is retired by the first VU that sees it
//! fail ([`Slot::retire`]); a stream reset or a timeout on one stream leaves it to the others.
//! When ALPN (https, `version: auto`) picks HTTP/1.1, the slot says so and its VUs connect on
//! their own from then on (HTTP/1.1 cannot multiplex).
use std::cell::{Cell, RefCell};
use std::rc::Rc;

use tokio::sync::Notify;

use super::h2::H2Conn;
use crate::spec::H2Options;

/// One shared connection place.
#[derive(Default)]
pub struct Slot {
    conn: RefCell<Option<H2Conn>>,
    generation: Cell<u64>,
    connecting: Cell<bool>,
    /// ALPN picked HTTP/1.1 on this target: VUs use private connections.
    h1: Cell<bool>,
    ready: Notify,
}

/// What a VU finds at its slot.
pub enum Found {
    /// A live shared connection (and its generation).
    Live(H2Conn, u64),
    /// Nothing live: this VU connects (then calls [`Slot::connected`] or [`Slot::failed`]).
    Connect,
    /// The target speaks HTTP/1.1 here: connect privately.
    Private,
}

impl Slot {
    /// The generation of the slot's current connection (bumped on each new one).
    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    /// Whether ALPN picked HTTP/1.1 on this slot's target.
    pub fn is_h1(&self) -> bool {
        self.h1.get()
    }

    /// The live connection, or the right to open one (waiting while another VU connects).
    pub async fn acquire(&self) -> Found {
        loop {
            if self.h1.get() {
                return Found::Private;
            }
            if let Some(c) = self.conn.borrow().as_ref().filter(|c| !c.is_closed()) {
                return Found::Live(c.clone(), self.generation.get());
            }
            if !self.connecting.get() {
                self.connecting.set(true);
                return Found::Connect;
            }
            // Registered before the await: a notify_waiters in between still wakes it
            // (the worker is single-threaded, nothing runs between the check and here).
            self.ready.notified().await;
        }
    }

    /// The connecting VU's new h2 connection; returns its generation.
    pub fn connected(&self, c: &H2Conn) -> u64 {
        *self.conn.borrow_mut() = Some(c.clone());
        self.generation.set(self.generation.get() + 1);
        self.connecting.set(false);
        self.ready.notify_waiters();
        self.generation.get()
    }

    /// The connecting VU got HTTP/1.1 (`h1`) or nothing.
    pub fn failed(&self, h1: bool) {
        if h1 {
            self.h1.set(true);
        }
        self.connecting.set(false);
        self.ready.notify_waiters();
    }

    /// Drop the connection of `generation` (it failed for good); a newer one stays.
    pub fn retire(&self, generation: u64) {
        if self.generation.get() == generation {
            *self.conn.borrow_mut() = None;
        }
    }
}

/// A worker's slots for one scenario and target.
pub struct H2Pool {
    slots: RefCell<Vec<Rc<Slot>>>,
    streams: u64,
    /// Most slots on this worker.
    cap: usize,
    assigned: Cell<u64>,
}

impl H2Pool {
    /// The pool of worker `k` of `threads`: `opts.connections` split over the threads (at
    /// least one each), unbounded without it.
    pub fn new(opts: &H2Options, k: usize, threads: usize) -> H2Pool {
        let threads = threads.max(1);
        let cap = match opts.connections {
            Some(n) => {
                let n = n as usize;
                (n / threads + usize::from(k < n % threads)).max(1)
            }
            None => usize::MAX,
        };
        H2Pool {
            slots: RefCell::new(Vec::new()),
            streams: u64::from(opts.streams.max(1)),
            cap,
            assigned: Cell::new(0),
        }
    }

    /// The slot of the next VU: VUs fill a slot `streams` at a time, then the next; past
    /// `cap` slots they wrap around.
    pub fn assign(&self) -> Rc<Slot> {
        let i = self.assigned.get();
        self.assigned.set(i + 1);
        let mut idx = (i / self.streams) as usize;
        if idx >= self.cap {
            idx %= self.cap;
        }
        let mut slots = self.slots.borrow_mut();
        while slots.len() <= idx {
            slots.push(Rc::new(Slot::default()));
        }
        slots[idx].clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vus_fill_connections_streams_at_a_time_within_the_bound() {
        let opts = H2Options {
            connections: Some(5),
            streams: 4,
        };
        // Worker 0 of 2 gets 3 of the 5 connections, worker 1 gets 2.
        assert_eq!(H2Pool::new(&opts, 0, 2).cap, 3);
        assert_eq!(H2Pool::new(&opts, 1, 2).cap, 2);
        let pool = H2Pool::new(&opts, 1, 2);
        let slots: Vec<Rc<Slot>> = (0..20).map(|_| pool.assign()).collect();
        assert_eq!(pool.slots.borrow().len(), 2);
        assert!(Rc::ptr_eq(&slots[0], &slots[3]) && !Rc::ptr_eq(&slots[3], &slots[4]));
        assert!(
            Rc::ptr_eq(&slots[8], &slots[0]),
            "past the bound VUs wrap around"
        );
        let unbounded = H2Pool::new(&H2Options::default(), 0, 1);
        (0..17).for_each(|_| drop(unbounded.assign()));
        let per = H2Options::default().streams as usize;
        assert_eq!(unbounded.slots.borrow().len(), 17_usize.div_ceil(per));
    }
}
