//! `--max-per-address` and `--exempt`: how many connections one client
//! address may hold at once, except the addresses exempted (by default
//! the loopback ones, as a local proxy's clients all come from there).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;

/// `--max-per-address`'s default.
pub const DEFAULT_MAX_PER_ADDRESS: usize = 20;

/// The connections open from each counted address.
#[derive(Debug)]
pub struct PerAddress {
    limit: usize,
    exempt: Vec<IpNet>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// The address has `--max-per-address` connections open already.
#[derive(Debug)]
pub struct AtLimit;

/// One connection counted against its address until dropped.
#[derive(Debug)]
pub struct Held {
    counts: Arc<PerAddress>,
    address: IpAddr,
}

impl PerAddress {
    /// At most `limit` connections an address, but from `exempt`.
    pub fn new(limit: usize, exempt: Vec<IpNet>) -> Self {
        Self {
            limit,
            exempt,
            open: Mutex::default(),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Counts one more connection from `address`: `Ok(None)` if the address
    /// is exempt, `Err` if it has `limit` open already.
    pub fn take(self: &Arc<Self>, address: IpAddr) -> Result<Option<Held>, AtLimit> {
        // A v4 client of a dual-stack listener arrives as ::ffff:a.b.c.d.
        let address = address.to_canonical();
        if self.exempt.iter().any(|net| net.contains(&address)) {
            return Ok(None);
        }
        let mut open = self.lock();
        let count = open.entry(address).or_default();
        if *count >= self.limit {
            return Err(AtLimit);
        }
        *count += 1;
        Ok(Some(Held {
            counts: Arc::clone(self),
            address,
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Counts are changed whole: a poisoned lock still holds good ones.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut open = self.counts.lock();
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// The loopback addresses, exempt unless `--exempt` says otherwise.
pub fn loopback() -> Vec<IpNet> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        // Both are valid networks.
        .map(|net| net.parse().unwrap())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_holds_at_most_the_limit_and_exempt_ones_any() {
        let counts = Arc::new(PerAddress::new(2, loopback()));
        let stranger: IpAddr = "192.0.2.7".parse().unwrap();
        let first = counts.take(stranger).unwrap();
        let second = counts.take(stranger).unwrap();
        assert!(first.is_some() && second.is_some());
        assert!(counts.take(stranger).is_err());
        // Another address counts apart.
        assert!(counts.take("192.0.2.8".parse().unwrap()).is_ok());
        drop(first);
        assert!(counts.take(stranger).is_ok());
        for _ in 0..10 {
            assert!(matches!(
                counts.take("127.0.0.1".parse().unwrap()),
                Ok(None)
            ));
            assert!(matches!(
                counts.take("::ffff:127.0.0.1".parse().unwrap()),
                Ok(None)
            ));
        }
        assert!(counts.lock().values().all(|&count| count <= 2));
    }
}
