"""The smallest MONAI Label app: no models, the default strategies. Used by
api_vs_monailabel.py to measure MONAI Label's own REST and datastore overhead."""
from monailabel.interfaces.app import MONAILabelApp


class EmptyApp(MONAILabelApp):
    def __init__(self, app_dir, studies, conf):
        super().__init__(app_dir=app_dir, studies=studies, conf=conf, name="empty", description="bench")

    def init_infers(self):
        return {}
