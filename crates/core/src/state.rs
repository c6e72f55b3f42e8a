//! Context states and the encoding of the merged state word
//! (`include/linux/context_tracking_state.h`, Linux 6.12+ names).
//!
//! The low two bits of `ct->state` hold the context; bits 2 and up are the RCU watching counter,
//! advanced by [`CT_RCU_WATCHING`] on every EQS transition, so "RCU is watching" is bit 2 set.

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
/// `CT_RCU_WATCHING` (= `CT_STATE_MAX`): the "RCU is watching" bit and counter increment.
pub const CT_RCU_WATCHING: u32 = 4;
/// `CT_RCU_WATCHING_MASK`: the counter bits of the state word.
pub const CT_RCU_WATCHING_MASK: u32 = !CT_STATE_MASK;
/// `CT_NESTING_IRQ_NONIDLE`: `nmi_nesting` while in non-idle process context.
pub const CT_NESTING_IRQ_NONIDLE: i64 = i64::MAX / 2 + 1;
/// Initial state word: KERNEL, watching, counter 1 (`DEFINE_PER_CPU(context_tracking)`).
pub const CT_STATE_INIT: u32 = CT_RCU_WATCHING;
