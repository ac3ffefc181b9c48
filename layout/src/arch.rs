//! Processor architectures a fat program can carry a slot for: the processor table of
//! `fatbin-core`, re-exported, and how the manifest spells its values.

pub use fatbin_core::arch::{machine_name, Arch, ArchInfo, Endian, Hwcap, UnknownArch, ARCHES};

/// Serde for an [`Arch`] field: its slot name (`aarch64`).
pub mod arch_serde {
    use super::Arch;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(arch: &Arch, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(arch.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arch, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Serde for an [`Endian`] field: `little` or `big`.
pub mod endian_serde {
    use super::Endian;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(endian: &Endian, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(endian.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Endian, D::Error> {
        let s = String::deserialize(d)?;
        Endian::from_name(&s)
            .ok_or_else(|| serde::de::Error::unknown_variant(&s, &["little", "big"]))
    }
}
