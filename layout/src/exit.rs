//! The exit statuses fatbin's own failures use, defined once for the launcher and migration.
//!
//! They follow the shell's conventions (POSIX "Command Search and Execution"), so scripts can
//! tell them apart from a program's own: 127 when the program or the requested slot is not
//! there, 126 when it is there but cannot be run, 2 for a usage or configuration error, and
//! 255, ssh's own status for "could not connect", for a migration whose transport failed.
//! docs/launcher.md and docs/migration.md list every case.

/// Bad command line, environment value or configuration (node inventory, settings).
pub const EXIT_USAGE: i32 = 2;
/// Found, but cannot be executed here (or, migrated, not in the caller's directory there).
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
/// The program, the layout root, the requested slot, or a node that runs it does not exist.
pub const EXIT_NOT_FOUND: i32 = 127;
/// A migration could not reach a node, or lost the connection while the program ran.
pub const EXIT_TRANSPORT: i32 = 255;
