//! The names of a job's steps, exactly as agents report them and the controller counts them.

pub const PREFLIGHT: &str = "preflight";
pub const MAINTENANCE_ON: &str = "maintenance_on";
pub const CONFIG_REVIEW: &str = "config_review";
pub const BACKUP: &str = "backup";
pub const CHECKOUT: &str = "checkout";
pub const MIGRATE: &str = "migrate";
pub const HEALTHCHECK: &str = "healthcheck";
pub const MAINTENANCE_OFF: &str = "maintenance_off";
pub const ROLLBACK_CHECKOUT: &str = "rollback_checkout";
pub const RESTORE_DATABASE: &str = "restore_database";
pub const ROLLBACK_HEALTHCHECK: &str = "rollback_healthcheck";

/// Every step name, for bounded labels.
pub const ALL: [&str; 11] = [
    PREFLIGHT,
    MAINTENANCE_ON,
    CONFIG_REVIEW,
    BACKUP,
    CHECKOUT,
    MIGRATE,
    HEALTHCHECK,
    MAINTENANCE_OFF,
    ROLLBACK_CHECKOUT,
    RESTORE_DATABASE,
    ROLLBACK_HEALTHCHECK,
];
