//! The periodic senders of deferrable work (text patching, kernel TLB flushes) on the
//! housekeeping CPU: when each next runs. What they do is [`crate::os::ct_work`].

use crate::config::Config;
use crate::machine::NEVER;

/// When the senders next run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Senders {
    pub(crate) next_poke_ns: u64,
    pub(crate) next_tlbi_ns: u64,
    /// The earlier of the two (read by the run loop on every event).
    pub(crate) next_ns: u64,
}

impl Senders {
    /// Senders at the periods of `cfg` (first run after one period).
    pub fn new(cfg: &Config) -> Senders {
        let (poke, tlbi) = (
            cfg.text_poke_period_ns.unwrap_or(NEVER),
            cfg.tlbi_period_ns.unwrap_or(NEVER),
        );
        Senders {
            next_poke_ns: poke,
            next_tlbi_ns: tlbi,
            next_ns: poke.min(tlbi),
        }
    }

    /// The next time a sender runs.
    #[inline(always)]
    pub fn next_event_ns(&self) -> u64 {
        self.next_ns
    }
}
