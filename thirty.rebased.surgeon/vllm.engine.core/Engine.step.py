    def step(self):
        a = 1
        b = 2
<<<<<<< thirty (on 1.0.0)
        c = 30
||||||| vllm 1.0.0
        c = 3
=======
        c = 3.0
>>>>>>> vllm 2.0.0
        d = 4
        return a + b + c + d
