"""The rule that stopped or deferred a dial state, and its source, become columns.

Before, they were the prefix of ``last_reason`` ("device_block: Manual: dispute") and
releases parsed it (``LIKE 'device_block:%'``). The data migration moves the prefix into
``last_rule``, keeps the words after it in ``last_reason``, and recovers the source where
the words name it: a device setting's source from its label (English or Portuguese, the
languages it was written in), a blacklist's id from its name, a registry's code from its
name.
"""

from django.db import migrations, models

RULES = (
    "device_block", "campaign_blacklist", "national_registry", "registry_stale",
    "calling_window", "holiday", "attempt_cap",
)  # fmt: skip

SOURCE_LABELS = {
    "manual": ("Manual",),
    "import": ("Import", "Importação"),
    "sms_opt_out": ("SMS opt-out", "Descadastro por SMS"),
    "sms_opt_in": ("SMS opt-in", "Recadastro por SMS"),
    "agent_dnc": ("Agent: do not call", "Agente: não ligar"),
}



def forward(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        # "rule: detail"  →  last_rule = rule, last_reason = detail
        cursor.execute(
            "UPDATE campaigns_dialstate "
            "SET last_rule = split_part(last_reason, ':', 1), "
            "    last_reason = btrim(substr(last_reason, strpos(last_reason, ':') + 1)) "
            "WHERE last_rule = '' AND split_part(last_reason, ':', 1) = ANY(%s)",
            [list(RULES)],
        )
        for source, labels in SOURCE_LABELS.items():
            for label in labels:
                cursor.execute(
                    "UPDATE campaigns_dialstate SET last_rule_source = %s "
                    "WHERE last_rule = 'device_block' AND last_rule_source = '' "
                    "AND (last_reason = %s OR last_reason LIKE %s)",
                    [source, label, label.replace("%", r"\%") + ":%"],
                )
        cursor.execute(
            "UPDATE campaigns_dialstate d SET last_rule_source = b.id::text "
            "FROM campaigns_blacklist b WHERE d.last_rule = 'campaign_blacklist' "
            "AND d.last_rule_source = '' "
            "AND (d.last_reason = b.name OR d.last_reason LIKE b.name || ':%%')",
            [],
        )
        cursor.execute(
            "UPDATE campaigns_dialstate d SET last_rule_source = r.code "
            "FROM public.devices_registry r "
            "WHERE d.last_rule IN ('national_registry', 'registry_stale') "
            "AND d.last_rule_source = '' "
            "AND (d.last_reason = r.name OR d.last_reason LIKE r.name || ' %%')",
            [],
        )


def backward(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "UPDATE campaigns_dialstate SET last_reason = left(last_rule || ': ' || last_reason, "
            "255) WHERE last_rule <> ''"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0002_blacklists"),
        ("devices", "0004_registries"),
    ]

    operations = [
        migrations.AddField(
            model_name="dialstate",
            name="last_rule",
            field=models.CharField(blank=True, max_length=32, default=""),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="dialstate",
            name="last_rule_source",
            field=models.CharField(blank=True, max_length=64, default=""),
            preserve_default=False,
        ),
        migrations.RunPython(forward, backward),
    ]
