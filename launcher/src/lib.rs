//! The fatbin launcher: pick the best slot of a fat program for this host and exec it, or
//! migrate the request to a node that can run it.

pub mod migrate;
