//! Who an access-list entry names (`groups.can_admin`, `groups.can_admin_policies`,
//! `application_admin`, and the users and groups in a role's authorization tags).
//!
//! An entry with `@` names a user by e-mail (case ignored) and never a group; an entry without
//! `@` names a group (exact) and never a user. Otherwise a group that somebody named like an
//! administrator's address (`admin@example.com`) would make its members administrators. For
//! group names that are addresses (Google Groups), configuration lists may write
//! `group:team@example.com`; tag values cannot (`:` separates their entries).

/// Whether `entry` names the user `email` or one of their `groups`.
pub fn names(entry: &str, email: &str, groups: &[String]) -> bool {
    let entry = entry.trim();
    if let Some(group) = entry.strip_prefix("group:") {
        let group = group.trim();
        return !group.is_empty() && groups.iter().any(|g| g == group);
    }
    if entry.is_empty() {
        false
    } else if names_a_user(entry) {
        entry.eq_ignore_ascii_case(email.trim())
    } else {
        groups.iter().any(|g| g == entry)
    }
}

/// An entry with `@` is an e-mail address.
pub fn names_a_user(entry: &str) -> bool {
    entry.contains('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_address_names_only_a_user_and_a_name_only_a_group() {
        assert!(names("Admin@Example.com", "admin@example.com", &[]));
        // A group named like the admin's address grants nothing.
        assert!(!names(
            "admin@example.com",
            "mallory@example.com",
            &g(&["admin@example.com"])
        ));
        assert!(names("admins", "x@example.com", &g(&["admins"])));
        // A user whose e-mail is a group's name is not in the group.
        assert!(!names("admins", "admins", &[]));
        assert!(
            !names("Admins", "x@example.com", &g(&["admins"])),
            "groups are exact"
        );
        assert!(!names("", "", &g(&[""])));
    }

    #[test]
    fn group_prefix_names_a_group_with_an_address_for_a_name() {
        let groups = g(&["team@example.com"]);
        assert!(names("group:team@example.com", "x@example.com", &groups));
        assert!(!names("group:team@example.com", "team@example.com", &[]));
        assert!(!names("group:", "x@example.com", &g(&[""])));
    }
}
