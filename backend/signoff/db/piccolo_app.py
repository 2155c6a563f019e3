"""piccolo's app definition: where signoff's migrations live and which tables it owns."""

from piccolo.conf.apps import AppConfig

from signoff.db import tables
from signoff.db.migrate import migrations_folder

APP_CONFIG = AppConfig(
    app_name="signoff",
    migrations_folder_path=str(migrations_folder()),
    table_classes=list(tables.ALL_TABLES),
)
