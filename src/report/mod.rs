//! Report writers, one file per format.
