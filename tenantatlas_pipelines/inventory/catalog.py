"""The Intune policy-type catalog: one table, one row per ``policy_type``.

Every row mirrors ``shared/spec/msgraph.md``. The graph client reads the path,
API version, ``$select`` and ``$filter`` from here; item normalisation reads
the name field, the category rule and the platform rule.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Category(StrEnum):
    CONFIGURATION = "configuration"
    COMPLIANCE = "compliance"
    APPS = "apps"
    ENROLLMENT = "enrollment"
    SCRIPTS = "scripts"
    UPDATES = "updates"
    SECURITY = "security"
    FOUNDATION = "foundation"


class PlatformRule(StrEnum):
    """How an item's platform is derived (the catalog's "platform from" column)."""

    NONE = "none"
    ODATA_TYPE_PREFIX = "odata_type_prefix"  # windows10*, ios*, macOS*, android* ...
    ODATA_TYPE = "odata_type"  # the odata type name, minus "#microsoft.graph."
    PLATFORMS_FIELD = "platforms_field"  # settings catalog / compliance v2 `platforms`
    PLATFORM_FIELD = "platform_field"  # assignment filters `platform`
    PLATFORM_TYPE = "platform_type"  # enrollment configurations: `platformType` or odata type
    TEMPLATE = "template"  # security intents: via templateId
    CONDITIONAL_ACCESS = "conditional_access"  # conditions.platforms.includePlatforms
    WINDOWS = "windows"
    MACOS = "macOS"


@dataclass(frozen=True, slots=True)
class PolicyType:
    key: str
    path: str
    version: str  # "v1.0" or "beta"
    category: Category
    name_field: str = "displayName"
    platform_rule: PlatformRule = PlatformRule.NONE
    select: tuple[str, ...] = ()
    filter: str | None = None
    # odata types the endpoint also returns that belong to another policy type
    exclude_odata_types: tuple[str, ...] = ()
    # some types move to another category by content (settings catalog -> security)
    extra_categories: tuple[Category, ...] = ()
    # Graph's rate limit class: conditional access allows 1 request per second
    rate_class: str = "intune"

    @property
    def foundation(self) -> bool:
        return self.category is Category.FOUNDATION

    @property
    def categories(self) -> frozenset[Category]:
        return frozenset((self.category, *self.extra_categories))

    def query_params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        if self.select:
            params["$select"] = ",".join(self.select)
        if self.filter:
            params["$filter"] = self.filter
        return params


_UPDATE_RING = "#microsoft.graph.windowsUpdateForBusinessConfiguration"
_TARGETED_APP_CONFIG = "#microsoft.graph.targetedManagedAppConfiguration"
MOBILE_APP_SELECT = (
    "id",
    "displayName",
    "description",
    "publisher",
    "isAssigned",
    "publishingState",
    "createdDateTime",
    "lastModifiedDateTime",
    "roleScopeTagIds",
)

_ROWS: tuple[PolicyType, ...] = (
    PolicyType(
        "deviceConfiguration",
        "deviceManagement/deviceConfigurations",
        "v1.0",
        Category.CONFIGURATION,
        platform_rule=PlatformRule.ODATA_TYPE_PREFIX,
        exclude_odata_types=(_UPDATE_RING,),
    ),
    PolicyType(
        "windowsUpdateRing",
        "deviceManagement/deviceConfigurations",
        "v1.0",
        Category.UPDATES,
        platform_rule=PlatformRule.WINDOWS,
        filter="isof('microsoft.graph.windowsUpdateForBusinessConfiguration')",
    ),
    PolicyType(
        "settingsCatalogPolicy",
        "deviceManagement/configurationPolicies",
        "beta",
        Category.CONFIGURATION,
        name_field="name",
        platform_rule=PlatformRule.PLATFORMS_FIELD,
        extra_categories=(Category.SECURITY,),
    ),
    PolicyType(
        "deviceCompliancePolicy",
        "deviceManagement/deviceCompliancePolicies",
        "v1.0",
        Category.COMPLIANCE,
        platform_rule=PlatformRule.ODATA_TYPE_PREFIX,
    ),
    PolicyType(
        "compliancePolicyV2",
        "deviceManagement/compliancePolicies",
        "beta",
        Category.COMPLIANCE,
        name_field="name",
        platform_rule=PlatformRule.PLATFORMS_FIELD,
    ),
    PolicyType(
        "groupPolicyConfiguration",
        "deviceManagement/groupPolicyConfigurations",
        "beta",
        Category.CONFIGURATION,
        platform_rule=PlatformRule.WINDOWS,
    ),
    PolicyType(
        "securityIntent",
        "deviceManagement/intents",
        "beta",
        Category.SECURITY,
        platform_rule=PlatformRule.TEMPLATE,
    ),
    PolicyType(
        "windowsAutopilotDeploymentProfile",
        "deviceManagement/windowsAutopilotDeploymentProfiles",
        "beta",
        Category.ENROLLMENT,
        platform_rule=PlatformRule.WINDOWS,
    ),
    PolicyType(
        "enrollmentConfiguration",
        "deviceManagement/deviceEnrollmentConfigurations",
        "v1.0",
        Category.ENROLLMENT,
        platform_rule=PlatformRule.PLATFORM_TYPE,
    ),
    PolicyType(
        "deviceManagementScript",
        "deviceManagement/deviceManagementScripts",
        "beta",
        Category.SCRIPTS,
        platform_rule=PlatformRule.WINDOWS,
    ),
    PolicyType(
        "deviceHealthScript",
        "deviceManagement/deviceHealthScripts",
        "beta",
        Category.SCRIPTS,
        platform_rule=PlatformRule.WINDOWS,
    ),
    PolicyType(
        "deviceShellScript",
        "deviceManagement/deviceShellScripts",
        "beta",
        Category.SCRIPTS,
        platform_rule=PlatformRule.MACOS,
    ),
    PolicyType(
        "deviceComplianceScript",
        "deviceManagement/deviceComplianceScripts",
        "beta",
        Category.COMPLIANCE,
        platform_rule=PlatformRule.WINDOWS,
    ),
    PolicyType(
        "windowsFeatureUpdateProfile",
        "deviceManagement/windowsFeatureUpdateProfiles",
        "beta",
        Category.UPDATES,
        platform_rule=PlatformRule.WINDOWS,
    ),
    PolicyType(
        "windowsQualityUpdateProfile",
        "deviceManagement/windowsQualityUpdateProfiles",
        "beta",
        Category.UPDATES,
        platform_rule=PlatformRule.WINDOWS,
    ),
    PolicyType(
        "windowsDriverUpdateProfile",
        "deviceManagement/windowsDriverUpdateProfiles",
        "beta",
        Category.UPDATES,
        platform_rule=PlatformRule.WINDOWS,
    ),
    PolicyType(
        "mobileApp",
        "deviceAppManagement/mobileApps",
        "v1.0",
        Category.APPS,
        platform_rule=PlatformRule.ODATA_TYPE,
        select=MOBILE_APP_SELECT,
    ),
    PolicyType(
        "appProtectionPolicy",
        "deviceAppManagement/managedAppPolicies",
        "v1.0",
        Category.APPS,
        platform_rule=PlatformRule.ODATA_TYPE,
        exclude_odata_types=(_TARGETED_APP_CONFIG,),
    ),
    PolicyType(
        "mobileAppConfiguration",
        "deviceAppManagement/mobileAppConfigurations",
        "v1.0",
        Category.APPS,
        platform_rule=PlatformRule.ODATA_TYPE,
    ),
    PolicyType(
        "targetedManagedAppConfiguration",
        "deviceAppManagement/targetedManagedAppConfigurations",
        "v1.0",
        Category.APPS,
    ),
    PolicyType(
        "conditionalAccessPolicy",
        "identity/conditionalAccess/policies",
        "v1.0",
        Category.SECURITY,
        platform_rule=PlatformRule.CONDITIONAL_ACCESS,
        rate_class="conditional_access",
    ),
    PolicyType(
        "roleScopeTag",
        "deviceManagement/roleScopeTags",
        "beta",
        Category.FOUNDATION,
    ),
    PolicyType(
        "assignmentFilter",
        "deviceManagement/assignmentFilters",
        "beta",
        Category.FOUNDATION,
        platform_rule=PlatformRule.PLATFORM_FIELD,
    ),
    PolicyType(
        "notificationMessageTemplate",
        "deviceManagement/notificationMessageTemplates",
        "v1.0",
        Category.FOUNDATION,
    ),
    PolicyType(
        "termsAndConditions",
        "deviceManagement/termsAndConditions",
        "v1.0",
        Category.FOUNDATION,
    ),
    PolicyType(
        "deviceCategory",
        "deviceManagement/deviceCategories",
        "v1.0",
        Category.FOUNDATION,
    ),
    PolicyType(
        "roleDefinition",
        "deviceManagement/roleDefinitions",
        "v1.0",
        Category.FOUNDATION,
        filter="isBuiltIn eq false",
    ),
)

CATALOG: Mapping[str, PolicyType] = {row.key: row for row in _ROWS}
POLICY_TYPE_KEYS: tuple[str, ...] = tuple(CATALOG)


class UnknownPolicyTypeError(KeyError):
    """A policy type key that is not in the catalog."""


def get_policy_type(key: str) -> PolicyType:
    try:
        return CATALOG[key]
    except KeyError:
        raise UnknownPolicyTypeError(
            f"unknown policy type {key!r}; known types: {', '.join(sorted(CATALOG))}"
        ) from None


def types_in_categories(categories: set[Category] | frozenset[Category]) -> set[str]:
    return {row.key for row in _ROWS if row.categories & categories}


def foundation_types() -> set[str]:
    return {row.key for row in _ROWS if row.foundation}


# --- platform and category rules -------------------------------------------

_ODATA_PREFIX = "#microsoft.graph."
_PLATFORM_PREFIXES: tuple[tuple[str, str], ...] = (
    # longest first: androidWorkProfile before android
    ("androidWorkProfile", "androidWorkProfile"),
    ("androidDeviceOwner", "android"),
    ("androidForWork", "androidWorkProfile"),
    ("android", "android"),
    ("aosp", "aosp"),
    ("windows10", "windows"),
    ("windows81", "windows"),
    ("windowsPhone81", "windowsPhone"),
    ("windows", "windows"),
    ("ios", "iOS"),
    ("macOS", "macOS"),
)


def odata_type_name(item: Mapping[str, Any]) -> str | None:
    value = item.get("@odata.type")
    if not isinstance(value, str) or not value:
        return None
    return value[len(_ODATA_PREFIX) :] if value.startswith(_ODATA_PREFIX) else value.lstrip("#")


_LOWERED_PREFIXES = tuple((prefix.lower(), platform) for prefix, platform in _PLATFORM_PREFIXES)


@functools.lru_cache(maxsize=4096)  # a tenant has a few dozen odata type names; this runs per item
def _prefix_platform(name: str | None) -> str | None:
    if not name:
        return None
    lowered = name.lower()
    for prefix, platform in _LOWERED_PREFIXES:
        if lowered.startswith(prefix):
            return platform
    return None


def _joined(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, list):
        parts = sorted({str(v) for v in value if isinstance(v, str | int) and str(v)})
        return ",".join(parts) or None
    return None


def derive_platform(policy_type: PolicyType, item: Mapping[str, Any]) -> str | None:
    rule = policy_type.platform_rule
    if rule is PlatformRule.NONE:
        return None
    if rule is PlatformRule.WINDOWS:
        return "windows"
    if rule is PlatformRule.MACOS:
        return "macOS"
    if rule is PlatformRule.ODATA_TYPE_PREFIX:
        return _prefix_platform(odata_type_name(item))
    if rule is PlatformRule.ODATA_TYPE:
        name = odata_type_name(item)
        return _prefix_platform(name) or name
    if rule is PlatformRule.PLATFORMS_FIELD:
        return _joined(item.get("platforms"))
    if rule is PlatformRule.PLATFORM_FIELD:
        return _joined(item.get("platform"))
    if rule is PlatformRule.PLATFORM_TYPE:
        return _joined(item.get("platformType")) or _prefix_platform(odata_type_name(item))
    if rule is PlatformRule.TEMPLATE:
        # intents carry only a templateId; Intune's security templates are Windows
        return "windows" if item.get("templateId") else None
    if rule is PlatformRule.CONDITIONAL_ACCESS:
        conditions = item.get("conditions")
        platforms = conditions.get("platforms") if isinstance(conditions, dict) else None
        include = platforms.get("includePlatforms") if isinstance(platforms, dict) else None
        return _joined(include)
    raise AssertionError(f"unhandled platform rule {rule}")  # pragma: no cover


def template_family(item: Mapping[str, Any]) -> str | None:
    ref = item.get("templateReference")
    if isinstance(ref, dict):
        family = ref.get("templateFamily")
        if isinstance(family, str) and family:
            return family
    return None


def derive_category(policy_type: PolicyType, item: Mapping[str, Any]) -> Category:
    if policy_type.key == "settingsCatalogPolicy":
        family = (template_family(item) or "").lower()
        if family.startswith("endpointsecurity") or family == "baseline":
            return Category.SECURITY
    return policy_type.category


def belongs_to(policy_type: PolicyType, item: Mapping[str, Any]) -> bool:
    """False for objects an endpoint returns that another policy type owns."""
    return item.get("@odata.type") not in policy_type.exclude_odata_types
