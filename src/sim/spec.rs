//! Builders that describe offers and drafts for a test or the demo to add to a world.
//!
//! A spec says only what the caller cares about. The world fills in every other field the
//! way the API would for that phase, so a test can ask for "a paid draft in `install`"
//! without writing an order, a delivery and an install operation by hand.

use crate::akua::{DraftStatus, TerminationReason};

/// An offer to add with [`crate::sim::World::add_offer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferSpec {
    pub(super) id: Option<String>,
    /// `active`, `archived`, `expired` or `redeemed`; any other string is stored as given.
    pub(super) status: String,
    /// A paid offer goes through `payment`; a free one goes from `configure` to `install`.
    pub(super) paid: bool,
    pub(super) product_id: Option<String>,
    pub(super) product_name: Option<String>,
    /// Between 1 and 1440; `None` stores the API's default of 120.
    pub(super) order_ttl_minutes: Option<u32>,
    pub(super) created_at: Option<i64>,
}

impl OfferSpec {
    /// Describes an active offer whose customers pay at checkout.
    pub fn paid() -> Self {
        OfferSpec {
            id: None,
            status: "active".to_owned(),
            paid: true,
            product_id: None,
            product_name: None,
            order_ttl_minutes: None,
            created_at: None,
        }
    }

    /// Describes an active non-billable offer, whose drafts skip `payment`.
    pub fn free() -> Self {
        OfferSpec { paid: false, ..OfferSpec::paid() }
    }

    /// Uses this id instead of a generated `offer_...` one.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    pub fn status(mut self, status: impl Into<String>) -> Self {
        self.status = status.into();
        self
    }

    pub fn product_id(mut self, product_id: impl Into<String>) -> Self {
        self.product_id = Some(product_id.into());
        self
    }

    pub fn product_name(mut self, name: impl Into<String>) -> Self {
        self.product_name = Some(name.into());
        self
    }

    /// Sets how long a draft of this offer may stay open; clamped to 1..=1440 minutes.
    pub fn order_ttl_minutes(mut self, minutes: u32) -> Self {
        self.order_ttl_minutes = Some(minutes.clamp(1, 1440));
        self
    }

    /// Sets `created_at` in Unix seconds instead of the world's current time.
    pub fn created_at(mut self, unix_seconds: i64) -> Self {
        self.created_at = Some(unix_seconds);
        self
    }
}

/// Whether and how a new draft gets a `customer_email`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum EmailChoice {
    /// A generated address once the customer has signed in, that is from `workspace` on.
    Generated,
    /// This address, whatever the phase.
    Given(String),
    /// No address, whatever the phase.
    Omitted,
}

/// A draft to add with [`crate::sim::World::add_draft`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DraftSpec {
    pub(super) offer_id: String,
    pub(super) id: Option<String>,
    pub(super) status: DraftStatus,
    pub(super) email: EmailChoice,
    pub(super) reason: Option<TerminationReason>,
    /// For a draft added in `cleaning_up` or `terminated`: the phase it ended from.
    pub(super) ended_from: Option<DraftStatus>,
    pub(super) created_at: Option<i64>,
}

impl DraftSpec {
    /// Describes a new draft of `offer_id` in `auth`. The offer need not exist in the world;
    /// a draft of an unknown offer is treated as paid.
    pub fn new(offer_id: impl Into<String>) -> Self {
        DraftSpec {
            offer_id: offer_id.into(),
            id: None,
            status: DraftStatus::Auth,
            email: EmailChoice::Generated,
            reason: None,
            ended_from: None,
            created_at: None,
        }
    }

    /// Uses this id instead of a generated `odft_...` one.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Starts the draft in this phase, with the fields that phase has. An unknown status is
    /// stored as given, with only the required fields.
    pub fn status(mut self, status: DraftStatus) -> Self {
        self.status = status;
        self
    }

    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = EmailChoice::Given(email.into());
        self
    }

    /// Leaves `customer_email` out, as the API may.
    pub fn without_email(mut self) -> Self {
        self.email = EmailChoice::Omitted;
        self
    }

    /// Sets `termination_reason`. Without one, a `terminated` draft gets none.
    pub fn reason(mut self, reason: TerminationReason) -> Self {
        self.reason = Some(reason);
        self
    }

    /// For a draft added in `cleaning_up` or `terminated`, sets the phase whose fields it
    /// keeps. The default follows the reason: `install` for `install_failed`, `compute` for
    /// `cluster_allocation_failed` and `quota_exceeded`, else `configure`.
    pub fn ended_from(mut self, status: DraftStatus) -> Self {
        self.ended_from = Some(status);
        self
    }

    /// Sets `created_at` in Unix seconds; `ttl_expires_at` follows from it.
    pub fn created_at(mut self, unix_seconds: i64) -> Self {
        self.created_at = Some(unix_seconds);
        self
    }
}
