from __future__ import annotations

from tenantatlas_pipelines.inventory.catalog import CATALOG, Category, derive_category, derive_platform

# every row of shared/spec/msgraph.md: key -> (path, version, category, name field)
SPEC_ROWS = {
    "deviceConfiguration": ("deviceManagement/deviceConfigurations", "v1.0", "configuration", "displayName"),
    "windowsUpdateRing": ("deviceManagement/deviceConfigurations", "v1.0", "updates", "displayName"),
    "settingsCatalogPolicy": ("deviceManagement/configurationPolicies", "beta", "configuration", "name"),
    "deviceCompliancePolicy": (
        "deviceManagement/deviceCompliancePolicies",
        "v1.0",
        "compliance",
        "displayName",
    ),
    "compliancePolicyV2": ("deviceManagement/compliancePolicies", "beta", "compliance", "name"),
    "groupPolicyConfiguration": (
        "deviceManagement/groupPolicyConfigurations",
        "beta",
        "configuration",
        "displayName",
    ),
    "securityIntent": ("deviceManagement/intents", "beta", "security", "displayName"),
    "windowsAutopilotDeploymentProfile": (
        "deviceManagement/windowsAutopilotDeploymentProfiles",
        "beta",
        "enrollment",
        "displayName",
    ),
    "enrollmentConfiguration": (
        "deviceManagement/deviceEnrollmentConfigurations",
        "v1.0",
        "enrollment",
        "displayName",
    ),
    "deviceManagementScript": ("deviceManagement/deviceManagementScripts", "beta", "scripts", "displayName"),
    "deviceHealthScript": ("deviceManagement/deviceHealthScripts", "beta", "scripts", "displayName"),
    "deviceShellScript": ("deviceManagement/deviceShellScripts", "beta", "scripts", "displayName"),
    "deviceComplianceScript": (
        "deviceManagement/deviceComplianceScripts",
        "beta",
        "compliance",
        "displayName",
    ),
    "windowsFeatureUpdateProfile": (
        "deviceManagement/windowsFeatureUpdateProfiles",
        "beta",
        "updates",
        "displayName",
    ),
    "windowsQualityUpdateProfile": (
        "deviceManagement/windowsQualityUpdateProfiles",
        "beta",
        "updates",
        "displayName",
    ),
    "windowsDriverUpdateProfile": (
        "deviceManagement/windowsDriverUpdateProfiles",
        "beta",
        "updates",
        "displayName",
    ),
    "mobileApp": ("deviceAppManagement/mobileApps", "v1.0", "apps", "displayName"),
    "appProtectionPolicy": ("deviceAppManagement/managedAppPolicies", "v1.0", "apps", "displayName"),
    "mobileAppConfiguration": ("deviceAppManagement/mobileAppConfigurations", "v1.0", "apps", "displayName"),
    "targetedManagedAppConfiguration": (
        "deviceAppManagement/targetedManagedAppConfigurations",
        "v1.0",
        "apps",
        "displayName",
    ),
    "conditionalAccessPolicy": ("identity/conditionalAccess/policies", "v1.0", "security", "displayName"),
    "roleScopeTag": ("deviceManagement/roleScopeTags", "beta", "foundation", "displayName"),
    "assignmentFilter": ("deviceManagement/assignmentFilters", "beta", "foundation", "displayName"),
    "notificationMessageTemplate": (
        "deviceManagement/notificationMessageTemplates",
        "v1.0",
        "foundation",
        "displayName",
    ),
    "termsAndConditions": ("deviceManagement/termsAndConditions", "v1.0", "foundation", "displayName"),
    "deviceCategory": ("deviceManagement/deviceCategories", "v1.0", "foundation", "displayName"),
    "roleDefinition": ("deviceManagement/roleDefinitions", "v1.0", "foundation", "displayName"),
}


def test_catalog_holds_every_row_of_the_spec_exactly() -> None:
    assert set(CATALOG) == set(SPEC_ROWS)
    for key, (path, version, category, name_field) in SPEC_ROWS.items():
        row = CATALOG[key]
        assert (row.path, row.version, row.category.value, row.name_field) == (
            path,
            version,
            category,
            name_field,
        ), key
        assert row.foundation == (category == "foundation")


def test_query_params_carry_select_and_filters_where_the_spec_asks() -> None:
    assert "largeIcon" not in CATALOG["mobileApp"].query_params()["$select"]
    assert "id" in CATALOG["mobileApp"].query_params()["$select"].split(",")
    assert "windowsUpdateForBusinessConfiguration" in CATALOG["windowsUpdateRing"].query_params()["$filter"]
    assert CATALOG["roleDefinition"].query_params() == {"$filter": "isBuiltIn eq false"}
    assert CATALOG["deviceConfiguration"].query_params() == {}


def test_endpoints_that_return_other_types_exclude_them() -> None:
    assert (
        "#microsoft.graph.windowsUpdateForBusinessConfiguration"
        in CATALOG["deviceConfiguration"].exclude_odata_types
    )
    assert (
        "#microsoft.graph.targetedManagedAppConfiguration"
        in CATALOG["appProtectionPolicy"].exclude_odata_types
    )


def test_platform_rules() -> None:
    dc = CATALOG["deviceConfiguration"]
    assert derive_platform(dc, {"@odata.type": "#microsoft.graph.windows10GeneralConfiguration"}) == "windows"
    assert derive_platform(
        dc, {"@odata.type": "#microsoft.graph.androidWorkProfileGeneralDeviceConfiguration"}
    ) == ("androidWorkProfile")
    assert derive_platform(dc, {"@odata.type": "#microsoft.graph.iosGeneralDeviceConfiguration"}) == "iOS"
    assert derive_platform(dc, {}) is None
    app = CATALOG["mobileApp"]
    assert derive_platform(app, {"@odata.type": "#microsoft.graph.webApp"}) == "webApp"
    ca = CATALOG["conditionalAccessPolicy"]
    assert (
        derive_platform(ca, {"conditions": {"platforms": {"includePlatforms": ["iOS", "android"]}}})
        == "android,iOS"
    )
    assert derive_platform(ca, {"conditions": None}) is None
    assert derive_platform(CATALOG["deviceShellScript"], {}) == "macOS"


def test_settings_catalog_endpoint_security_and_baselines_are_security() -> None:
    sc = CATALOG["settingsCatalogPolicy"]
    assert (
        derive_category(sc, {"templateReference": {"templateFamily": "endpointSecurityFirewall"}})
        is Category.SECURITY
    )
    assert derive_category(sc, {"templateReference": {"templateFamily": "baseline"}}) is Category.SECURITY
    assert derive_category(sc, {"templateReference": {"templateFamily": "none"}}) is Category.CONFIGURATION
    assert derive_category(sc, {}) is Category.CONFIGURATION
