"""The torch model layer (imports torch; never imported by ``import mmprep``)."""
