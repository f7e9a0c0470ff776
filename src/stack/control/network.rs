//! Network faults through the stack's fault proxies ([`crate::fault::proxy`]): the part of
//! [`StackHandle`] that puts toxics on the connections between the gateways and a dependency
//! and takes them off again. Apart from `mod.rs` because it acts on the proxies, not on the
//! component slots (processes and containers) the rest of the handle drives.
use super::{ControlError, StackHandle};
use crate::fault::proxy::{Applied, ProxyHandle};
use crate::spec::fault::NetworkFault;
use crate::spec::Component;

impl StackHandle {
    /// The fault proxy in front of `c` (redis, postgres), when the stack runs one.
    pub fn proxy(&self, c: Component) -> Option<ProxyHandle> {
        self.shared.proxy(c)
    }

    /// Puts a network fault (toxics, or the proxy down) on the connections between the
    /// gateways and `c`; undo it with [`StackHandle::heal`].
    pub async fn network_fault(
        &self,
        c: Component,
        fault: &NetworkFault,
    ) -> Result<Applied, ControlError> {
        let proxy = self.proxy_of(c)?;
        let applied = proxy
            .apply(fault)
            .await
            .map_err(|source| ControlError::Proxy {
                component: c,
                source,
            })?;
        tracing::info!(component = %c, ?fault, "network fault on");
        Ok(applied)
    }

    /// Undoes a [`StackHandle::network_fault`].
    pub async fn heal(&self, c: Component, applied: &Applied) -> Result<(), ControlError> {
        let proxy = self.proxy_of(c)?;
        proxy
            .revert(applied)
            .await
            .map_err(|source| ControlError::Proxy {
                component: c,
                source,
            })?;
        tracing::info!(component = %c, "network fault off");
        Ok(())
    }

    fn proxy_of(&self, c: Component) -> Result<ProxyHandle, ControlError> {
        self.shared.proxy(c).ok_or_else(|| ControlError::NoProxy {
            component: c,
            available: {
                let all: Vec<String> = self
                    .shared
                    .proxied()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                if all.is_empty() {
                    "none".into()
                } else {
                    all.join(", ")
                }
            },
        })
    }
}
