//! Which upstream: the providers' identities (names, public addresses, environment variables,
//! batch sizes). A leaf module: the quote names its source with it, and `provider/` builds
//! requests and parses answers for it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A quote upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// `hq.sinajs.cn`: GBK text, about 800 codes a request, needs a Referer.
    Sina,
    /// `qt.gtimg.cn`: GBK text, 60 codes a request.
    Tencent,
    /// Eastmoney push2 `ulist.np`: JSON.
    Eastmoney,
    /// A quantdb relay (`quantdb serve`): the library's own JSON, from a shared cache.
    Relay,
}

impl Provider {
    /// The three public upstreams, in the default order.
    pub const ALL: [Provider; 3] = [Provider::Sina, Provider::Tencent, Provider::Eastmoney];

    /// The provider's name as serialised: `sina`, `tencent`, `eastmoney`, `relay`.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Sina => "sina",
            Provider::Tencent => "tencent",
            Provider::Eastmoney => "eastmoney",
            Provider::Relay => "relay",
        }
    }

    /// The public base URL.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Provider::Sina => "http://hq.sinajs.cn",
            Provider::Tencent => "http://qt.gtimg.cn",
            Provider::Eastmoney => "https://push2.eastmoney.com",
            Provider::Relay => "http://127.0.0.1:8650",
        }
    }

    /// The environment variable that overrides the base URL.
    pub fn url_env_var(self) -> &'static str {
        match self {
            Provider::Sina => "QUANTDB_SINA_URL",
            Provider::Tencent => "QUANTDB_TENCENT_URL",
            Provider::Eastmoney => "QUANTDB_EASTMONEY_URL",
            Provider::Relay => "QUANTDB_RELAY_URL",
        }
    }

    /// Codes per request.
    pub fn default_chunk_size(self) -> usize {
        match self {
            Provider::Sina => 800,
            Provider::Tencent => 60,
            Provider::Eastmoney => 100,
            Provider::Relay => 500,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Provider {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sina" => Ok(Provider::Sina),
            "tencent" => Ok(Provider::Tencent),
            "eastmoney" => Ok(Provider::Eastmoney),
            "relay" => Ok(Provider::Relay),
            other => Err(Error::Config(format!(
                "unknown provider {other:?}: use sina, tencent, eastmoney or relay"
            ))),
        }
    }
}
