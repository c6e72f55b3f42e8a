//! Context states and the encoding of the merged state word
//! (`include/linux/context_tracking_state.h`, Linux 6.12+ names).
//!
//! The low two bits of `ct->state` hold the context; bits 2 and up are the RCU watching counter,
//! advanced by [`CT_RCU_WATCHING`] on every EQS transition, so "RCU is watching" is bit 2 set.
//!
//! With deferred work (the CT_WORK series, `CONFIG_CONTEXT_TRACKING_WORK`) the word is
//! `[ context_state | context work | RCU watching counter | unused ]` from bit 0: one work bit
//! per type at [`CT_WORK_START`], and the counter moves up by the work field's width. A
//! [`CtLayout`] says which layout a CPU uses; [`CtLayout::MAINLINE`] is the one above. The
//! counter a remote reader gets ([`CtLayout::counter`]) is always at mainline's position, so RCU's
//! snapshot tests read the same whatever the layout.

/// `enum ctx_state` without `CT_STATE_DISABLED` (that one is never stored; [`crate::Ct::ct_state`]
/// returns `None` for it).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CtState {
    /// `CT_STATE_KERNEL`: running kernel code.
    Kernel = 0,
    /// `CT_STATE_IDLE`: in the idle loop's EQS (`ct_idle_enter`).
    Idle = 1,
    /// `CT_STATE_USER`: running user code.
    User = 2,
    /// `CT_STATE_GUEST`: running a KVM guest.
    Guest = 3,
}

impl CtState {
    /// Decodes the low two bits of a state word.
    #[inline]
    pub const fn from_bits(word: u32) -> CtState {
        match word & CT_STATE_MASK {
            0 => CtState::Kernel,
            1 => CtState::Idle,
            2 => CtState::User,
            _ => CtState::Guest,
        }
    }

    /// The numeric value Linux stores (`CT_STATE_*`).
    #[inline]
    pub const fn bits(self) -> u32 {
        self as u32
    }

    /// Upper-case name as used in reports (`KERNEL`, `USER`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            CtState::Kernel => "KERNEL",
            CtState::Idle => "IDLE",
            CtState::User => "USER",
            CtState::Guest => "GUEST",
        }
    }
}

/// `CT_STATE_MASK`: the low bits holding the context.
pub const CT_STATE_MASK: u32 = 3;
/// `CT_RCU_WATCHING` (= `CT_STATE_MAX`): the "RCU is watching" bit and counter increment, in
/// the mainline layout and in every layout's [`CtLayout::counter`] (a CPU's own updates use
/// [`CtLayout::watching`]).
pub const CT_RCU_WATCHING: u32 = 4;
/// `CT_RCU_WATCHING_MASK`: the counter bits of the state word (mainline layout).
pub const CT_RCU_WATCHING_MASK: u32 = !CT_STATE_MASK;
/// `CT_NESTING_IRQ_NONIDLE`: `nmi_nesting` while in non-idle process context.
pub const CT_NESTING_IRQ_NONIDLE: i64 = i64::MAX / 2 + 1;
/// Initial state word: KERNEL, watching, counter 1 (`DEFINE_PER_CPU(context_tracking)`; mainline
/// layout, see [`CtLayout::init`]).
pub const CT_STATE_INIT: u32 = CT_RCU_WATCHING;

/// `CT_WORK_START`: the first bit of the work field (right above the context bits).
pub const CT_WORK_START: u32 = 2;

/// `enum ct_work`: the deferrable IPI types, one bit each in the work field
/// (`CT_WORK_*_OFFSET`).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CtWork {
    /// `CT_WORK_SYNC`: `sync_core()` after kernel text patching or a static key flip
    /// (`do_sync_core()` deferred by `smp_text_poke_sync_each_cpu_deferrable()`).
    Sync = 0,
    /// `CT_WORK_TLBI` (RFC v1-v4): a kernel TLB flush (`__flush_tlb_all()` in noinstr form).
    Tlbi = 1,
}

impl CtWork {
    /// Every type, in bit order (`CT_WORK_MAX_OFFSET` entries).
    pub const ALL: [CtWork; 2] = [CtWork::Sync, CtWork::Tlbi];

    /// Its offset in the work field (`CT_WORK_*_OFFSET`).
    #[inline(always)]
    pub const fn offset(self) -> u32 {
        self as u32
    }

    /// `enum ct_work` value: `BIT(offset)`.
    #[inline(always)]
    pub const fn bit(self) -> u32 {
        1 << self.offset()
    }

    /// Linux's name.
    pub const fn name(self) -> &'static str {
        match self {
            CtWork::Sync => "CT_WORK_SYNC",
            CtWork::Tlbi => "CT_WORK_TLBI",
        }
    }
}

/// The state word's layout: how many work types it holds (`CT_WORK_WIDTH`, 0 without
/// `CONFIG_CONTEXT_TRACKING_WORK`) and whether the RCU watching counter is cut to 2 bits
/// (`CONFIG_RCU_DYNTICKS_TORTURE`, which makes its wrap-around reachable). The masks are
/// computed once, so each use on an entry path is one operand, as Linux's constants are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CtLayout {
    work_width: u8,
    torture: bool,
    nmi_flush: bool,
    /// `CT_WORK_MASK`.
    work_mask: u32,
    /// `CT_RCU_WATCHING`.
    watching: u32,
    /// `CT_RCU_WATCHING_MASK`.
    watching_mask: u32,
}

impl CtLayout {
    /// Mainline: no work field, the counter from bit 2 to 31.
    pub const MAINLINE: CtLayout = CtLayout::new(0, false);

    /// A layout with the first `work_types` types of [`CtWork::ALL`] (clamped to them) and the
    /// 2-bit counter when `torture`.
    pub const fn new(work_types: u32, torture: bool) -> CtLayout {
        let w = if work_types > CtWork::ALL.len() as u32 {
            CtWork::ALL.len() as u32
        } else {
            work_types
        };
        let watching = 1 << (CT_WORK_START + w);
        CtLayout {
            work_width: w as u8,
            torture,
            nmi_flush: false,
            work_mask: ((1 << w) - 1) << CT_WORK_START,
            watching,
            // Under torture the carries out of the two bits land in unused bits, which every
            // reader masks off.
            watching_mask: if torture {
                3 * watching
            } else {
                !(watching - 1)
            },
        }
    }

    /// The same layout, with an NMI (or NMI-like exception) that finds RCU already watching also
    /// flushing the word's work bits. Not in the series: a mitigation for the window between an
    /// entry's fully ordered add and its `ct_work_flush()`, where such an NMI would otherwise run
    /// before the deferred work (stale bits make it flush spuriously, which callbacks tolerate).
    pub const fn with_nmi_flush(mut self) -> CtLayout {
        self.nmi_flush = true;
        self
    }

    /// Whether [`CtLayout::with_nmi_flush`] is on.
    #[inline(always)]
    pub const fn nmi_flush(self) -> bool {
        self.nmi_flush
    }

    /// `CT_WORK_WIDTH`.
    #[inline(always)]
    pub const fn work_width(self) -> u32 {
        self.work_width as u32
    }

    /// `CONFIG_RCU_DYNTICKS_TORTURE`.
    #[inline(always)]
    pub const fn torture(self) -> bool {
        self.torture
    }

    /// Whether `work` has a bit in this layout (else it cannot be deferred: the
    /// `!CONFIG_CONTEXT_TRACKING_WORK` stub of `ct_set_cpu_work()` returns false).
    #[inline(always)]
    pub const fn holds(self, work: CtWork) -> bool {
        work.offset() < self.work_width()
    }

    /// `CT_WORK_MASK`.
    #[inline(always)]
    pub const fn work_mask(self) -> u32 {
        self.work_mask
    }

    /// `CT_RCU_WATCHING`: the "RCU is watching" bit and the counter's increment.
    #[inline(always)]
    pub const fn watching(self) -> u32 {
        self.watching
    }

    /// `CT_RCU_WATCHING_MASK`: the counter's bits.
    #[inline(always)]
    pub const fn watching_mask(self) -> u32 {
        self.watching_mask
    }

    /// The counter of `word`, moved to mainline's position (bit 2): what `ct_rcu_watching()`
    /// returns, so that `snap & CT_RCU_WATCHING` means "watching" in every layout.
    #[inline(always)]
    pub const fn counter(self, word: u32) -> u32 {
        (word & self.watching_mask) >> self.work_width
    }

    /// The work bits set in `word` (`(seq & CT_WORK_MASK) >> CT_WORK_START`).
    #[inline(always)]
    pub const fn work(self, word: u32) -> u32 {
        (word & self.work_mask) >> CT_WORK_START
    }

    /// The initial state word: KERNEL, watching, counter 1.
    #[inline(always)]
    pub const fn init(self) -> u32 {
        self.watching
    }
}

impl Default for CtLayout {
    fn default() -> Self {
        CtLayout::MAINLINE
    }
}
