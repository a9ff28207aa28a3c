//! The POPIA modules (docs/adr/0008): the data inventory, and (being built) the vault,
//! consent, data-subject requests, retention and the Information Officer's report. They
//! run off the transfer path: nothing here is called by a tenant's ledger routes.

pub mod inventory;
pub mod seal;
