//! The IO-free core of triage.
#![cfg_attr(docsrs, feature(doc_cfg))]
