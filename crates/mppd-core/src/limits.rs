//! The per-connection limits of §8.3 that most connections use rarely or never (`ch`, `chown`,
//! `kickban`/`unban`, `userset`, `chset`, `custom` bytes). Their windows live in one table
//! instead of in every connection: a window that has ended is the same as one never started, so
//! such entries are dropped, and an idle connection holds none.

use crate::ConnId;
use crate::config::{CoreConfig, Rate};
use crate::quota::RateLimiter;
use crate::time::Millis;
use std::collections::HashMap;

/// The per-connection limits of §8.3 whose refusal is a silent drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Limit {
    Ch,
    Chown,
    /// Shared by `kickban` and `unban`.
    Kickban,
    Userset,
    Chset,
    /// Bytes of `custom` data.
    CustomBytes,
}

impl Limit {
    const ALL: [Limit; 6] = [Limit::Ch, Limit::Chown, Limit::Kickban, Limit::Userset, Limit::Chset, Limit::CustomBytes];

    fn rate(self, config: &CoreConfig) -> Rate {
        match self {
            Limit::Ch => config.ch_rate,
            Limit::Chown => config.chown_rate,
            Limit::Kickban => config.kickban_rate,
            Limit::Userset => config.userset_rate,
            Limit::Chset => config.chset_rate,
            Limit::CustomBytes => config.custom_bytes,
        }
    }
}

/// Table size below which ended windows are not swept.
const SWEEP_MIN_ENTRIES: usize = 64;

/// The windows of rarely used limits that may still be running, per connection and limit.
#[derive(Debug, Default)]
pub(crate) struct RareLimits {
    windows: HashMap<(ConnId, Limit), RateLimiter>,
    /// Entries after the last sweep: the next one comes when the table has doubled.
    swept_len: usize,
}

impl RareLimits {
    /// Records `amount` units of `limit` for `conn` at `now` if its window has room for them.
    pub(crate) fn allow(&mut self, config: &CoreConfig, now: Millis, conn: ConnId, limit: Limit, amount: u64) -> bool {
        if self.windows.len() >= (2 * self.swept_len).max(SWEEP_MIN_ENTRIES) {
            self.windows.retain(|(_, limit), window| window.running(now, limit.rate(config)));
            self.swept_len = self.windows.len();
        }
        self.windows.entry((conn, limit)).or_default().allow(now, limit.rate(config), amount)
    }

    /// Drops a closed connection's windows.
    pub(crate) fn forget(&mut self, conn: ConnId) {
        for limit in Limit::ALL {
            self.windows.remove(&(conn, limit));
        }
    }
}
