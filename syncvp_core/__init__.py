"""SyncVP joint RGB-D video prediction in pure PyTorch + NumPy (never imports ROS)."""
