//! Regions: with `regions: 2` the stack's gateways are split in two sets of `gateways`
//! instances each, gw-1..gw-N in the primary region and gw-N+1..gw-2N in the secondary one,
//! in start order. The edge prefers the primary's (its health checks decide) and fails over to
//! the secondary's; a region fault acts on every instance of one region at once.
//!
//! Why the naming continues gw-N rather than restarting per region (`gw-p1`, `gw-s1`): the
//! gateways stay one numbered list, so `gateway[N]`, `GATEWAY_URLS`, the registry and the
//! logs mean what they meant with one region; a region is a view over that list.
//!
//! An operation on a region runs the same operation on each of its gateways concurrently
//! (each under its own per-component lock, as [`StackHandle::act`] does for one) and returns
//! once all took effect: a region `kill` returns when every instance is dead and reaped, so
//! the fault's injection time is when the whole region was gone. Every instance is acted on
//! even when one fails; the first failure is returned, naming its gateway.
use std::time::Instant;

use futures_util::future::join_all;

use super::{ComponentState, ControlError, OpReport, Shared, StackHandle};
use crate::spec::{Component, Region, StackOp};

impl Shared {
    /// Sets the number of regions (1 or 2) the gateways are split in.
    pub(in crate::stack) fn set_regions(&self, regions: u32) {
        self.state().regions = regions.clamp(1, 2);
    }

    /// The gateways of region `r`, in order; empty when the stack runs one region.
    fn region_gateways(&self, r: Region) -> Vec<Component> {
        let st = self.state();
        if st.regions < 2 {
            return Vec::new();
        }
        let per = st.gateways.len() / st.regions as usize;
        let first = r.index() * per;
        (first + 1..=first + per)
            .map(|n| Component::Gateway(n as u32))
            .collect()
    }
}

impl StackHandle {
    /// The gateways of region `r` (`gateway[N]`), in order; empty with one region.
    pub fn region_gateways(&self, r: Region) -> Vec<Component> {
        self.shared.region_gateways(r)
    }

    /// Up while any instance of the region is; else paused while any is; else down.
    pub(super) fn region_state(&self, r: Region) -> Option<ComponentState> {
        let states: Vec<ComponentState> = self
            .shared
            .region_gateways(r)
            .into_iter()
            .filter_map(|g| self.state(g))
            .collect();
        if states.is_empty() {
            None
        } else if states.contains(&ComponentState::Up) {
            Some(ComponentState::Up)
        } else if states.contains(&ComponentState::Paused) {
            Some(ComponentState::Paused)
        } else {
            Some(ComponentState::Down)
        }
    }

    /// `op` on every gateway of region `r`, concurrently; see the module doc.
    pub(super) async fn act_region(
        &self,
        r: Region,
        op: StackOp,
        started: Instant,
    ) -> Result<OpReport, ControlError> {
        let component = Component::Region(r);
        let members = self.shared.region_gateways(r);
        if members.is_empty() {
            return Err(ControlError::NoSuchComponent {
                component,
                available: self
                    .components()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let results = join_all(members.iter().map(|g| Box::pin(self.act(*g, op)))).await;
        let mut details = Vec::new();
        let mut first_error = None;
        for (g, res) in members.iter().zip(results) {
            match res {
                Ok(rep) => details.push(format!("{}: {}", g.registry_name(), rep.detail)),
                Err(e) => {
                    details.push(format!("{}: failed", g.registry_name()));
                    first_error.get_or_insert(ControlError::Failed {
                        component,
                        op,
                        reason: format!("{}: {e}", g.registry_name()),
                    });
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(OpReport {
            component,
            op,
            elapsed: started.elapsed(),
            detail: details.join("; "),
        })
    }
}
