"""Optional engines: :mod:`mmprep.integrations.ray` (``pip install 'mmprep[ray]'``)."""
