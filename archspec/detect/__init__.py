"""Object detection as the course teaches it: boxes, IoU and NMS, YOLO targets and loss (imports torch)."""
