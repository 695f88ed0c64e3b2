//! RFC 4067 Context Transfer Protocol (CXTP). Filled by the CXTP issue.
