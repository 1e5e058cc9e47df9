"""Release managers may retry any job (maintainers retry their own packages' jobs)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "release managers"
PERMISSION = ("testing_app", "job", "retry_any_job")


def grant(apps, schema_editor):
    # Permissions normally appear after all migrations (post_migrate); create them now so a
    # fresh database gets the complete group in this same migrate run.
    app_config = apps.get_app_config("testing_app")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    app_label, model, codename = PERMISSION
    group, _ = Group.objects.get_or_create(name=GROUP)
    group.permissions.add(
        Permission.objects.get(
            content_type__app_label=app_label, content_type__model=model, codename=codename
        )
    )


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    app_label, model, codename = PERMISSION
    permission = Permission.objects.filter(
        content_type__app_label=app_label, content_type__model=model, codename=codename
    ).first()
    group = Group.objects.filter(name=GROUP).first()
    if group and permission:
        group.permissions.remove(permission)


class Migration(migrations.Migration):
    dependencies = [
        ("testing_app", "0003_worker_processes_and_job_execution_facts"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
