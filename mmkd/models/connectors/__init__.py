from .gcblock import GcBlock  # noqa: F401
from .mgd import MGDConnector  # noqa: F401
from .abf import ABFConnector  # noqa: F401
from .defeat_adapt import DeFeatAdapter  # noqa: F401
