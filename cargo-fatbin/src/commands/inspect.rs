//! `cargo fatbin inspect`: arguments to [`crate::options::InspectOptions`].

use crate::cli::InspectArgs;
use crate::error::Result;
use crate::options::InspectOptions;

pub(super) fn inspect(args: InspectArgs) -> Result<()> {
    crate::inspect::inspect(&InspectOptions {
        path: args.path,
        json: args.json,
    })
}
