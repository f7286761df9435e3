"""OPE studies: estimators against the simulator's true values (``recoworld ope``)."""
