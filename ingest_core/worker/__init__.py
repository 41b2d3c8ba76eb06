"""The extraction worker: huey tasks registered on a given huey instance
(``tasks``) and the module-level instance huey's consumer imports (``consumer``)."""
