//! Listing switches, as nft's command-line flags.

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrintOptions {
    /// `-s`: omit stateful values (counter packets/bytes, quota usage).
    pub stateless: bool,
    /// `-p`: print layer 4 protocols numerically (`ip protocol 6`).
    pub numeric_protocol: bool,
}
