//! The `FATBIN_FALLBACK` grammar: what to try, in order, when no slot runs natively.
//!
//! A comma-separated list of `slurm`, `nodes` and `qemu` (spaces around words allowed, repeats
//! ignored); `none` or an empty value means no fallback at all. Unset means
//! [`DEFAULT`]. Anything else is an error the full launcher reports.

/// What to try when no slot runs natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Submit the request to Slurm (a `[slurm.NAME]` route of the inventory).
    Slurm,
    /// Migrate the request to a node from `ROOT/nodes.toml`.
    Nodes,
    /// Emulate a slot with qemu-user.
    Qemu,
}

/// The order when `FATBIN_FALLBACK` is unset.
pub const DEFAULT: [Fallback; 3] = [Fallback::Slurm, Fallback::Nodes, Fallback::Qemu];

impl Fallback {
    pub const fn name(self) -> &'static str {
        match self {
            Fallback::Slurm => "slurm",
            Fallback::Nodes => "nodes",
            Fallback::Qemu => "qemu",
        }
    }
}

/// A parsed `FATBIN_FALLBACK`: each fallback at most once, in the order given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Order {
    items: [Option<Fallback>; 3],
}

impl Order {
    pub fn iter(&self) -> impl Iterator<Item = Fallback> + '_ {
        self.items.iter().flatten().copied()
    }

    fn push(&mut self, fallback: Fallback) {
        if self.iter().any(|f| f == fallback) {
            return;
        }
        if let Some(free) = self.items.iter_mut().find(|i| i.is_none()) {
            *free = Some(fallback);
        }
    }
}

/// Parses a value; the error is the first word that is not a fallback.
pub fn parse(value: &str) -> Result<Order, &str> {
    let mut order = Order::default();
    for word in value.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        match word {
            "slurm" => order.push(Fallback::Slurm),
            "nodes" => order.push(Fallback::Nodes),
            "qemu" => order.push(Fallback::Qemu),
            "none" => {}
            other => return Err(other),
        }
    }
    Ok(order)
}

/// Whether a raw value (any bytes) is one [`parse`] accepts.
pub fn is_valid(value: &[u8]) -> bool {
    core::str::from_utf8(value).is_ok_and(|v| parse(v).is_ok())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn order(v: &str) -> Result<Vec<Fallback>, &str> {
        parse(v).map(|o| o.iter().collect())
    }

    #[test]
    fn grammar() {
        use Fallback::*;
        assert_eq!(order(""), Ok(Vec::new()));
        assert_eq!(order("none"), Ok(Vec::new()));
        assert_eq!(order(" qemu , nodes "), Ok(std::vec![Qemu, Nodes]));
        assert_eq!(order("nodes,qemu,nodes"), Ok(std::vec![Nodes, Qemu]));
        assert_eq!(order("qemu,slurm,nodes"), Ok(std::vec![Qemu, Slurm, Nodes]));
        assert_eq!(order(",,"), Ok(Vec::new()));
        assert_eq!(order("nodes,bogus"), Err("bogus"));
        assert_eq!(order("NODES"), Err("NODES"));
        assert_eq!(order("nodes;qemu"), Err("nodes;qemu"));
        assert!(!is_valid(b"qemu\xff"));
        assert!(is_valid(b"qemu"));
    }

    /// Each fallback's name is the word that selects it.
    #[test]
    fn names_parse_back() {
        for f in DEFAULT {
            assert_eq!(order(f.name()), Ok(std::vec![f]));
        }
    }
}
