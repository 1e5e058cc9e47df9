"""The 'reviewers' and 'release managers' groups every environment needs, with their permissions.

Views check permissions, not group names: putting a user in a group (admin) is how a person is
made a reviewer or release manager.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP_PERMISSIONS = {
    "reviewers": [
        ("packages_app", "proposal", "review_proposal"),
        ("packages_app", "proposal", "view_proposal"),
        ("packages_app", "proposalnote", "view_proposalnote"),
        ("packages_app", "proposalnote", "add_proposalnote"),
        ("packages_app", "package", "view_package"),
        ("packages_app", "maintainer", "view_maintainer"),
    ],
    "release managers": [
        ("packages_app", "torchrelease", "add_torchrelease"),
        ("packages_app", "torchrelease", "change_torchrelease"),
        ("packages_app", "torchrelease", "view_torchrelease"),
        ("packages_app", "package", "view_package"),
        ("packages_app", "package", "change_package"),
        ("packages_app", "build", "view_build"),
        ("testing_app", "waiver", "add_waiver"),
        ("testing_app", "waiver", "change_waiver"),
        ("testing_app", "waiver", "view_waiver"),
        ("testing_app", "promotion", "add_promotion"),
        ("testing_app", "promotion", "change_promotion"),
        ("testing_app", "promotion", "view_promotion"),
        ("testing_app", "promotionitem", "view_promotionitem"),
    ],
}


def create_groups(apps, schema_editor):
    # Permissions are normally created after all migrations (post_migrate); create them now so
    # that a fresh database gets complete groups in this same migrate run.
    for app_label in ("packages_app", "testing_app"):
        app_config = apps.get_app_config(app_label)
        # create_permissions skips app configs without a models module (historical ones).
        previous = getattr(app_config, "models_module", None)
        app_config.models_module = True
        try:
            create_permissions(app_config, apps=apps, verbosity=0)
        finally:
            app_config.models_module = previous
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, wanted in GROUP_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        for app_label, model, codename in wanted:
            # .get(): a missing permission is a bug in this list, and must stop the migration.
            group.permissions.add(
                Permission.objects.get(
                    content_type__app_label=app_label,
                    content_type__model=model,
                    codename=codename,
                )
            )


def delete_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=GROUP_PERMISSIONS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("packages_app", "0003_proposal_review"),
        ("testing_app", "0002_newest_first_by_id"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, delete_groups)]
