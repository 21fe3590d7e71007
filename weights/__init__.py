"""Shipped SharpCam models (installed as ``vcam.weights``)."""
