#![no_main]

use std::sync::LazyLock;

use hearth_backup::{Keys, fuzzing};
use libfuzzer_sys::fuzz_target;

static KEYS: LazyLock<Keys> = LazyLock::new(fuzzing::keys);

fuzz_target!(|data: &[u8]| fuzzing::pack(data, &KEYS));
