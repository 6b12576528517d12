    def shutdown(self) -> None:
<<<<<<< shutdown_head (on 0.20.0)
        logger.info("vllm-surgeon: scheduler shutting down")
||||||| vllm 0.20.0
=======
        logger.debug_once("[shutdown] Scheduler: start")
>>>>>>> vllm 0.23.0
        if self.kv_event_publisher:
            self.kv_event_publisher.shutdown()
        if self.connector is not None:
            self.connector.shutdown()

        if self.ec_connector is not None:
            self.ec_connector.shutdown()

        logger.debug_once("[shutdown] Scheduler: complete")
