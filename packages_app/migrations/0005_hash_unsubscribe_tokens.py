"""Maintainer preferences links become HMACs of a stored salt: the table holds no working link.

The old plain token is kept as the salt (it is random), so no data is rewritten; links sent in
earlier emails stop working and the next email carries the new one.
"""

from django.db import migrations
from django.db import models

import packages_app.models


class Migration(migrations.Migration):
    dependencies = [
        ("packages_app", "0004_reviewer_and_release_manager_groups"),
    ]

    operations = [
        migrations.RenameField(
            model_name="maintainer",
            old_name="unsubscribe_token",
            new_name="unsubscribe_salt",
        ),
        migrations.AlterField(
            model_name="maintainer",
            name="unsubscribe_salt",
            field=models.CharField(default=packages_app.models.new_status_token, max_length=64),
        ),
    ]
