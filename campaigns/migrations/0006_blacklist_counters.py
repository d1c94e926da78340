from django.db import migrations, models

# Counts every existing list once, in the schema being migrated (django-tenants runs this
# in each account's schema); from here on campaigns.blacklists keeps them.
BACKFILL = """
UPDATE campaigns_blacklist b SET
    entry_count = (SELECT count(*) FROM campaigns_blacklistentry e WHERE e.blacklist_id = b.id),
    campaign_count = (
        SELECT count(*) FROM campaigns_campaign_blacklists cb WHERE cb.blacklist_id = b.id
    )
"""


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0005_alter_blacklistentry_source"),
    ]

    operations = [
        migrations.AddField(
            model_name="blacklist",
            name="entry_count",
            field=models.BigIntegerField(default=0, verbose_name="entries"),
        ),
        migrations.AddField(
            model_name="blacklist",
            name="campaign_count",
            field=models.PositiveIntegerField(default=0, verbose_name="campaigns"),
        ),
        migrations.RunSQL(BACKFILL, reverse_sql=migrations.RunSQL.noop),
    ]
