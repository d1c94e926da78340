"""The carrier's answer on a ledger row: a SIP reason phrase, an SMPP receipt's stat and err.

The ledger is partitioned and unmanaged (migration 0001 writes its SQL), so the column is
added by SQL, on the parent: PostgreSQL adds it to every partition. A constant default
makes it a catalogue change, not a rewrite of the rows.
"""

from django.db import migrations, models

ADD = "ALTER TABLE public.devices_attempt ADD COLUMN carrier_answer varchar(160) NOT NULL DEFAULT ''"
DROP = "ALTER TABLE public.devices_attempt DROP COLUMN carrier_answer"


class Migration(migrations.Migration):
    dependencies = [("devices", "0005_inbound_receipts_sms_routes")]

    operations = [
        migrations.RunSQL(
            ADD,
            DROP,
            state_operations=[
                migrations.AddField(
                    model_name="attempt",
                    name="carrier_answer",
                    field=models.CharField(
                        blank=True, max_length=160, verbose_name="carrier's answer"
                    ),
                )
            ],
        ),
    ]
