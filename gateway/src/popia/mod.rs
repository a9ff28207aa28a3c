//! The POPIA modules (docs/adr/0008): the data inventory ([`inventory`]), sealing and
//! opening personal information ([`seal`]), the tenant-facing vault and consent routes
//! ([`subjects`]) with their access-request export ([`export`]), the Information
//! Officer's and auditors' routes ([`officer`]), and the retention and key re-wrap jobs
//! ([`jobs`]). They run off the transfer path: nothing here is called by a tenant's
//! ledger routes, and the jobs run on the main runtime.

pub mod export;
pub mod inventory;
pub mod jobs;
pub mod officer;
pub mod seal;
pub mod subjects;
