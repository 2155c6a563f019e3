"""piccolo's configuration module (PICCOLO_CONF): the engine and the app registry."""

from piccolo.conf.apps import AppRegistry

from signoff.db.engine import ENGINE

DB = ENGINE
APP_REGISTRY = AppRegistry(apps=["signoff.db.piccolo_app"])
