//! Values -> nft's own listing text (`nft list ruleset`).
