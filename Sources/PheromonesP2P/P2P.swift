// The peer-to-peer layer lives in this module.
