"""Database names couchsync gives a meaning to, defined once."""

#: CouchDB's system databases that the manifests' ``users:`` and ``replications:`` manage.
USERS_DB = "_users"
REPLICATOR_DB = "_replicator"
#: The id prefix of a user's document in ``_users``.
USER_PREFIX = "org.couchdb.user:"
#: couchsync's own database of apply locks (``couchsync.lock``): never a pattern's match.
LOCK_DB = "couchsync-locks"
#: The pseudo-database of config steps (``Step.database``): its apply lock is
#: ``db:_config``, and no real database name starts with ``_config``.
CONFIG = "_config"
